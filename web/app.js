// deskd viewer: noVNC (served by deskd from the npm package) plus a small toolbar.
//
// Query parameters, all optional:
//   url=ws://host:port/path   connect somewhere else (e.g. through a proxy) instead of this origin
//   path=websockify           WebSocket path on this origin (default "websockify")
//   scale=0|1  resize=0|1  view_only=0|1  quality=0-9  compression=0-9
//   reconnect=0               do not reconnect automatically
//   encodings=zrle,raw        offer only these encodings (debugging, and lossless tests)
//   jpeg=0                    do not send a JPEG quality level, so Tight stays lossless
//   link=TOKEN                a signed viewer link (`deskd link`): sent with the WebSocket,
//                             which it lets in without a password; "ro" links are view-only
//
// Tests reach the live RFB object as `window.deskdRfb`; `window.deskd` exposes the state.

import RFB from './novnc/core/rfb.js';

const params = new URLSearchParams(window.location.search);
const $ = (id) => document.getElementById(id);

// noVNC always offers every encoding it decodes; narrowing the list lets one pin an encoding.
const ENCODING_NUMBERS = {
    raw: 0, copyrect: 1, rre: 2, hextile: 5, zlib: 6, tight: 7, zrle: 16, jpeg: 21, h264: 50,
    tightpng: -260,
};
const onlyEncodings = params.get('encodings');
const noJpeg = params.get('jpeg') === '0';
if (onlyEncodings !== null || noJpeg) {
    const known = new Set(Object.values(ENCODING_NUMBERS));
    const wanted = new Set((onlyEncodings ?? Object.keys(ENCODING_NUMBERS).join(','))
        .split(',').map((n) => ENCODING_NUMBERS[n.trim().toLowerCase()]));
    const send = RFB.messages.clientEncodings;
    RFB.messages.clientEncodings = (sock, encs) => send(sock, encs.filter((e) => {
        if (known.has(e)) return wanted.has(e);
        // QualityLevel pseudo-encodings (-32..-23) are what allow JPEG.
        return !(noJpeg && e >= -32 && e <= -23);
    }));
}

const ui = {
    status: $('status'),
    screen: $('screen'),
    scale: $('opt-scale'),
    resize: $('opt-resize'),
    viewOnly: $('opt-viewonly'),
    keysButton: $('keys-button'),
    keysMenu: $('keys-menu'),
    clipboardButton: $('clipboard-button'),
    clipboardPanel: $('clipboard-panel'),
    clipboardText: $('clipboard-text'),
    clipboardSend: $('clipboard-send'),
    reconnect: $('reconnect-button'),
    passwordDialog: $('password-dialog'),
    passwordForm: $('password-form'),
    passwordInput: $('password-input'),
    passwordCancel: $('password-cancel'),
};

function flag(name, fallback) {
    const v = params.get(name);
    if (v === null) return fallback;
    return v === '1' || v === 'true' || v === 'yes';
}

function level(name) {
    const v = params.get(name);
    if (v === null) return null;
    const n = Number.parseInt(v, 10);
    return Number.isInteger(n) && n >= 0 && n <= 9 ? n : null;
}

// A signed viewer link: `v1.<expiry>.<rw|ro>.<signature>`. The server enforces it; the page
// only mirrors a view-only link in its toolbar.
const link = params.get('link');
const linkViewOnly = link !== null && link.split('.')[2] === 'ro';

function socketUrl() {
    const explicit = params.get('url');
    if (explicit) return explicit;
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = (params.get('path') || 'websockify').replace(/^\/+/, '');
    // Resolve against the page's directory so deskd also works behind a path prefix.
    const base = window.location.pathname.replace(/[^/]*$/, '');
    const query = link !== null ? `?link=${encodeURIComponent(link)}` : '';
    return `${scheme}//${window.location.host}${base}${path}${query}`;
}

ui.scale.checked = flag('scale', true);
ui.resize.checked = flag('resize', false);
ui.viewOnly.checked = linkViewOnly || flag('view_only', false);
ui.viewOnly.disabled = linkViewOnly;
const autoReconnect = flag('reconnect', true);
const quality = level('quality');
const compression = level('compression');

const state = {
    rfb: null,
    password: null,       // remembered for reconnects, never stored
    attempt: 0,           // reconnect attempts since the last successful connect
    timer: null,
    userClosed: false,
    connected: false,
    connects: 0,          // successful connections so far (tests watch reconnects with it)
};
window.deskd = state;

function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
}

function applyOptions(rfb) {
    rfb.scaleViewport = ui.scale.checked;
    rfb.clipViewport = !ui.scale.checked;
    rfb.resizeSession = ui.resize.checked;
    rfb.viewOnly = ui.viewOnly.checked;
    if (quality !== null) rfb.qualityLevel = quality;
    if (compression !== null) rfb.compressionLevel = compression;
}

function connect() {
    clearTimeout(state.timer);
    state.timer = null;
    state.userClosed = false;
    if (state.rfb) {
        const old = state.rfb;
        state.rfb = null;
        old.disconnect();
    }
    setStatus('connecting', state.attempt ? `reconnecting (attempt ${state.attempt})…` : 'connecting…');

    const options = { shared: true };
    if (state.password !== null) options.credentials = { password: state.password };
    let rfb;
    try {
        rfb = new RFB(ui.screen, socketUrl(), options);
    } catch (err) {
        setStatus('disconnected', `cannot connect: ${err.message}`);
        scheduleReconnect();
        return;
    }
    state.rfb = rfb;
    window.deskdRfb = rfb;
    applyOptions(rfb);

    rfb.addEventListener('connect', () => {
        if (state.rfb !== rfb) return;
        state.attempt = 0;
        state.connected = true;
        state.connects += 1;
        setStatus('connected', 'connected');
    });
    rfb.addEventListener('disconnect', (e) => {
        if (state.rfb !== rfb) return;
        state.connected = false;
        state.rfb = null;
        if (state.userClosed) {
            setStatus('disconnected', 'disconnected');
            return;
        }
        setStatus('disconnected', e.detail.clean ? 'disconnected' : 'connection lost');
        scheduleReconnect();
    });
    rfb.addEventListener('credentialsrequired', () => askPassword(rfb));
    rfb.addEventListener('securityfailure', (e) => {
        // A wrong password: forget it so the next attempt prompts again.
        state.password = null;
        const reason = e.detail.reason ? `: ${e.detail.reason}` : '';
        setStatus('error', `authentication failed${reason}`);
    });
    rfb.addEventListener('clipboard', (e) => {
        ui.clipboardText.value = e.detail.text;
    });
    rfb.addEventListener('desktopname', (e) => {
        document.title = e.detail.name ? `${e.detail.name} — deskd` : 'deskd';
    });
}

function scheduleReconnect() {
    if (!autoReconnect || state.userClosed) return;
    state.attempt += 1;
    // Exponential backoff from 0.5 s to 30 s, with jitter so many viewers don't stampede.
    const base = Math.min(30000, 500 * 2 ** Math.min(state.attempt - 1, 6));
    const delay = base / 2 + Math.random() * (base / 2);
    setStatus('reconnecting', `reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.timer = setTimeout(connect, delay);
}

function askPassword(rfb) {
    // noVNC only asks when the credentials given to the constructor were missing.
    setStatus('auth', 'password required');
    ui.passwordInput.value = '';
    ui.passwordDialog.showModal();
    ui.passwordForm.onsubmit = () => {
        state.password = ui.passwordInput.value;
        if (state.rfb === rfb) rfb.sendCredentials({ password: state.password });
    };
}

ui.passwordCancel.addEventListener('click', () => {
    ui.passwordDialog.close();
    state.userClosed = true;
    if (state.rfb) state.rfb.disconnect();
});

for (const box of [ui.scale, ui.resize, ui.viewOnly]) {
    box.addEventListener('change', () => {
        if (state.rfb) applyOptions(state.rfb);
    });
}

const KEYS = {
    esc: [0xff1b, 'Escape'],
    tab: [0xff09, 'Tab'],
    super: [0xffeb, 'MetaLeft'],   // Super_L
};

ui.keysButton.addEventListener('click', () => {
    const open = ui.keysMenu.hidden;
    ui.keysMenu.hidden = !open;
    ui.keysButton.setAttribute('aria-expanded', String(open));
});
ui.keysMenu.addEventListener('click', (e) => {
    const key = e.target.closest('button')?.dataset.key;
    if (!key) return;
    ui.keysMenu.hidden = true;
    ui.keysButton.setAttribute('aria-expanded', 'false');
    const rfb = state.rfb;
    if (!rfb) return;
    if (key === 'ctrlaltdel') {
        rfb.sendCtrlAltDel();
    } else if (KEYS[key]) {
        const [keysym, code] = KEYS[key];
        rfb.sendKey(keysym, code);
    }
    rfb.focus();
});

ui.clipboardButton.addEventListener('click', () => {
    const open = ui.clipboardPanel.hidden;
    ui.clipboardPanel.hidden = !open;
    ui.clipboardButton.setAttribute('aria-expanded', String(open));
});

function sendClipboard() {
    if (state.rfb) state.rfb.clipboardPasteFrom(ui.clipboardText.value);
}
let clipboardTimer = null;
ui.clipboardText.addEventListener('input', () => {
    // Send shortly after typing stops rather than one message per keystroke.
    clearTimeout(clipboardTimer);
    clipboardTimer = setTimeout(sendClipboard, 250);
});
ui.clipboardSend.addEventListener('click', () => {
    clearTimeout(clipboardTimer);
    sendClipboard();
});

ui.reconnect.addEventListener('click', () => {
    state.attempt = 0;
    connect();
});

connect();
