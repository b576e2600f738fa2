// Drives deskd's /v1 desktop API with sandbox-agent's own SDK (npm `sandbox-agent`) and checks
// every outcome against the X server with tools we did not write: xdpyinfo (size, dpi),
// xwininfo (window geometry), xdotool (pointer, active window), xev (buttons, wheel, keys),
// xclip (clipboard, the primary selection of an xterm drag) and ImageMagick import (pixels).
//
// Run by tests/v1_sdk.rs with DESKD_URL, DESKD_TOKEN, XAUTHORITY, DISPLAY_NUM and WORK_DIR
// set. Exits non-zero with a message on the first failed check.

import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
// The SDK lives in web/node_modules, not next to this script (ESM only: import its entry).
const sdkEntry = join(here, '..', '..', 'web', 'node_modules', 'sandbox-agent', 'dist', 'index.js');
const { SandboxAgent, SandboxAgentError } = await import(pathToFileURL(sdkEntry).href);

const baseUrl = process.env.DESKD_URL;
const token = process.env.DESKD_TOKEN;
const displayNum = Number(process.env.DISPLAY_NUM);
const xenv = { ...process.env, DISPLAY: `:${displayNum}` };
const children = [];

function log(...a) { console.log('[v1-sdk]', ...a); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function x(prog, args, opts = {}) {
    return execFileSync(prog, args, { env: xenv, encoding: opts.encoding ?? 'utf8', timeout: 10000, input: opts.input, maxBuffer: 64 << 20 });
}

async function until(what, pred, timeoutMs = 3000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(20);
    }
}

async function problem(promise, status, code) {
    try {
        await promise;
    } catch (e) {
        assert.ok(e instanceof SandboxAgentError, `expected SandboxAgentError, got ${e}`);
        assert.equal(e.status, status, JSON.stringify(e.problem));
        if (code) assert.equal(e.problem?.code ?? e.problem?.type?.split(':').pop(), code, JSON.stringify(e.problem));
        return e.problem;
    }
    throw new Error(`expected ${status} ${code ?? ''}, but the call succeeded`);
}

function xwininfo(id) {
    const out = x('xwininfo', ['-id', id]);
    const num = (label) => Number(out.match(new RegExp(`${label}:\\s+(-?\\d+)`))[1]);
    return { x: num('Absolute upper-left X'), y: num('Absolute upper-left Y'), width: num('Width'), height: num('Height') };
}

function pointer() {
    const out = x('xdotool', ['getmouselocation', '--shell']);
    return { x: Number(out.match(/X=(\d+)/)[1]), y: Number(out.match(/Y=(\d+)/)[1]) };
}

function xdpyinfo(num) {
    const out = execFileSync('xdpyinfo', ['-display', `:${num}`], { env: xenv, encoding: 'utf8', timeout: 10000 });
    const [, w, h] = out.match(/dimensions:\s+(\d+)x(\d+) pixels/);
    const [, dpi] = out.match(/resolution:\s+(\d+)x\d+ dots per inch/);
    return { width: Number(w), height: Number(h), dpi: Number(dpi) };
}

// A PNG's size and RGB pixels (8-bit RGB or RGBA, non-interlaced: what deskd writes).
function decodePng(buf) {
    assert.equal(buf.subarray(1, 4).toString(), 'PNG');
    let off = 8; let width = 0; let height = 0; let colorType = 0; const idat = [];
    while (off < buf.length) {
        const len = buf.readUInt32BE(off); const type = buf.subarray(off + 4, off + 8).toString();
        const data = buf.subarray(off + 8, off + 8 + len);
        if (type === 'IHDR') { width = data.readUInt32BE(0); height = data.readUInt32BE(4); colorType = data[9]; assert.equal(data[8], 8); }
        if (type === 'IDAT') idat.push(data);
        off += 12 + len;
    }
    const bpp = colorType === 6 ? 4 : 3;
    const raw = inflateSync(Buffer.concat(idat)); const stride = width * bpp;
    const out = Buffer.alloc(width * height * 3); let prev = Buffer.alloc(stride);
    for (let y = 0; y < height; y++) {
        const f = raw[y * (stride + 1)]; const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
        for (let i = 0; i < stride; i++) {
            const a = i >= bpp ? line[i - bpp] : 0; const b = prev[i]; const c = i >= bpp ? prev[i - bpp] : 0;
            let p = 0;
            if (f === 1) p = a; else if (f === 2) p = b; else if (f === 3) p = (a + b) >> 1;
            else if (f === 4) { const pa = Math.abs(b - c); const pb = Math.abs(a - c); const pc = Math.abs(a + b - 2 * c); p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
            line[i] = (line[i] + p) & 255;
        }
        for (let px = 0; px < width; px++) line.copy(out, (y * width + px) * 3, px * bpp, px * bpp + 3);
        prev = line;
    }
    return { width, height, rgb: out };
}

// xev as an input recorder: every ButtonPress/Release (button) and KeyPress/Release (keysym).
function startXev() {
    // stdbuf: xev's stdout is a pipe here, which stdio would otherwise buffer.
    const p = spawn('stdbuf', ['-oL', 'xev', '-geometry', '320x240+600+420', '-event', 'button', '-event', 'keyboard'], { env: xenv, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(p);
    const events = []; let pending = '';
    // xev starts each event with a blank line, so an event is complete once the next one
    // starts or its last line ("same_screen" for buttons, "XFilterEvent" for keys) arrived.
    const parse = (b) => {
        const kind = b.match(/^(ButtonPress|ButtonRelease|KeyPress|KeyRelease) event/m)?.[1];
        if (!kind) return;
        const button = b.match(/button (\d+)/)?.[1];
        const keysym = b.match(/keysym 0x[0-9a-f]+, ([^)]+)\)/)?.[1];
        const state = b.match(/state (0x[0-9a-f]+)/)?.[1];
        const root = b.match(/root:\((-?\d+),(-?\d+)\)/);
        events.push({ kind, button: button && Number(button), keysym, state, root: root && [Number(root[1]), Number(root[2])] });
    };
    p.stdout.on('data', (d) => {
        pending += d.toString();
        const blocks = pending.split(/\n(?=\w+ event, serial)/);
        pending = blocks.pop();
        blocks.forEach(parse);
        if (/same_screen \w+\n|XFilterEvent returns: \w+\n/.test(pending)) { parse(pending); pending = ''; }
    });
    return { events, take() { return events.splice(0); } };
}

async function main() {
    const sdk = await SandboxAgent.connect({ baseUrl, token });
    assert.deepEqual(await sdk.getHealth(), { status: 'ok' });
    const anon = await fetch(`${baseUrl}/v1/desktop/status`);
    assert.equal(anon.status, 401, 'the /v1 routes need the API token');

    // Lifecycle: restart on the requested display with the requested size and dpi.
    let st = await sdk.startDesktop({ width: 1024, height: 768, dpi: 120, displayNum });
    assert.equal(st.state, 'active');
    assert.equal(st.display, `:${displayNum}`);
    assert.deepEqual(st.resolution, { width: 1024, height: 768, dpi: 120 });
    for (const name of ['Xvfb', 'openbox']) {
        assert.ok(st.processes.some((p) => p.name === name && p.running && p.pid > 0), `${name} in ${JSON.stringify(st.processes)}`);
    }
    assert.deepEqual(xdpyinfo(displayNum), { width: 1024, height: 768, dpi: 120 });
    assert.deepEqual(await sdk.getDesktopDisplayInfo(), { display: `:${displayNum}`, resolution: { width: 1024, height: 768, dpi: 120 } });
    // Already active and asked for nothing new: the same desktop.
    const again = await sdk.startDesktop({});
    assert.equal(again.startedAt, st.startedAt);
    log('start ok', st.display, st.startedAt);

    // launch with wait: the window id once mapped; geometry as xwininfo sees it.
    const term = await sdk.launchDesktopApp({ app: 'xterm', args: ['-geometry', '60x10+40+30', '-title', 'deskd-v1-term', '-e', 'sh', '-c', 'echo ready-to-select; sleep 600'], wait: true });
    assert.match(term.processId, /^proc_\d+$/);
    assert.ok(term.pid > 0 && /^\d+$/.test(term.windowId), JSON.stringify(term));
    let wins = (await sdk.listDesktopWindows()).windows;
    let w = wins.find((v) => v.id === term.windowId);
    assert.equal(w.title, 'deskd-v1-term');
    assert.deepEqual({ x: w.x, y: w.y, width: w.width, height: w.height }, xwininfo(w.id));
    const moved = await sdk.moveDesktopWindow(term.windowId, { x: 200, y: 150 });
    assert.deepEqual({ x: moved.x, y: moved.y, width: moved.width, height: moved.height }, xwininfo(w.id));
    assert.ok(moved.x >= 200 && moved.x < 210 && moved.y >= 150 && moved.y < 190, JSON.stringify(moved));
    const resized = await sdk.resizeDesktopWindow(term.windowId, { width: 500, height: 300 });
    const g = xwininfo(w.id);
    assert.deepEqual({ x: resized.x, y: resized.y, width: resized.width, height: resized.height }, g);
    assert.ok(Math.abs(g.width - 500) < 20 && Math.abs(g.height - 300) < 30, JSON.stringify(g));
    const focused = await sdk.focusDesktopWindow(term.windowId);
    assert.equal(focused.isActive, true);
    assert.equal((await sdk.getDesktopFocusedWindow()).id, term.windowId);
    assert.equal(x('xdotool', ['getactivewindow']).trim(), term.windowId);
    await problem(sdk.focusDesktopWindow('999999'), 404, 'window_not_found');
    log('windows ok', JSON.stringify(resized));

    // Pointer: answers match X.
    let p = await sdk.moveDesktopMouse({ x: 123, y: 77 });
    assert.deepEqual([p.x, p.y], [123, 77]);
    assert.deepEqual(pointer(), { x: 123, y: 77 });
    p = await sdk.moveDesktopMouse({ x: resized.x + 50, y: resized.y + 50 });
    assert.equal(p.window, term.windowId, 'the window under the pointer');
    assert.deepEqual(await sdk.getDesktopMousePosition(), p);

    // An xterm drag selects its text: the primary selection is the outcome.
    const row = resized.y + 8;
    const dragged = await sdk.dragDesktopMouse({ startX: resized.x + 1, startY: row, endX: resized.x + 300, endY: row });
    assert.deepEqual([dragged.x, dragged.y], [resized.x + 300, row]);
    await until('xterm selection', () => x('xclip', ['-o', '-selection', 'primary']).includes('ready-to-select'));
    log('pointer and drag ok');

    // xev records buttons, wheel and keys.
    const xev = startXev();
    const xevWin = await until('xev window', async () => (await sdk.listDesktopWindows()).windows.find((v) => v.title === 'Event Tester'));
    await sdk.focusDesktopWindow(xevWin.id);
    const cx = xevWin.x + 100; const cy = xevWin.y + 100;
    const expect = async (what, pred) => until(what, () => pred(xev.events)).catch((e) => {
        throw new Error(`${e.message}; xev saw ${JSON.stringify(xev.events)}`);
    });
    p = await sdk.clickDesktop({ x: cx, y: cy, button: 'right', clickCount: 2 });
    assert.deepEqual([p.x, p.y, p.window], [cx, cy, xevWin.id]);
    await expect('two right clicks', (ev) => ev.filter((e) => e.kind === 'ButtonPress' && e.button === 3).length === 2);
    xev.take();
    await sdk.scrollDesktop({ x: cx, y: cy, deltaY: 3 });
    await sdk.scrollDesktop({ x: cx, y: cy, deltaX: -2 });
    await expect('wheel', (ev) => ev.filter((e) => e.kind === 'ButtonPress' && e.button === 5).length === 3
        && ev.filter((e) => e.kind === 'ButtonPress' && e.button === 6).length === 2);
    xev.take();
    await sdk.mouseDownDesktop({ x: cx + 10, y: cy + 10, button: 'middle' });
    await sdk.mouseUpDesktop({ button: 'middle' });
    await expect('middle press and release', (ev) => ev.some((e) => e.kind === 'ButtonPress' && e.button === 2 && e.root[0] === cx + 10)
        && ev.some((e) => e.kind === 'ButtonRelease' && e.button === 2));
    await problem(sdk.mouseUpDesktop({ x: 5 }), 400, 'desktop_invalid_action');
    await problem(sdk.scrollDesktop({ x: 5, y: 5 }), 400, 'desktop_invalid_action');
    xev.take();
    assert.deepEqual(await sdk.typeDesktopText({ text: 'hello' }), { ok: true });
    await sdk.typeDesktopText({ text: 'hi', delayMs: 5 });
    await sdk.pressDesktopKey({ key: 'a', modifiers: { shift: true } });
    await sdk.pressDesktopKey({ key: 'ctrl+Return' });
    await sdk.keyDownDesktop({ key: 'alt' });
    await sdk.keyUpDesktop({ key: 'alt' });
    const want = ['h', 'e', 'l', 'l', 'o', 'h', 'i', 'Shift_L', 'A', 'Control_L', 'Return', 'Alt_L'];
    await expect('typed keys', (ev) => ev.filter((e) => e.kind === 'KeyPress').map((e) => e.keysym).join(' ') === want.join(' '));
    await expect('alt released', (ev) => ev.some((e) => e.kind === 'KeyRelease' && e.keysym === 'Alt_L'));
    await problem(sdk.pressDesktopKey({ key: 'notakey' }), 400, 'desktop_invalid_action');
    await problem(sdk.typeDesktopText({ text: '' }), 400, 'desktop_invalid_action');
    log('input ok');

    // Clipboard both ways.
    const text = 'deskd v1 ✓ clipboard';
    assert.deepEqual(await sdk.setDesktopClipboard({ text }), { ok: true });
    assert.equal(x('xclip', ['-o', '-selection', 'clipboard']), text);
    const owner = spawn('xclip', ['-selection', 'clipboard', '-i', '-quiet'], { env: xenv, stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(owner);
    owner.stdin.end('set by xclip');
    await until('xclip owns the clipboard', async () => (await sdk.getDesktopClipboard()).text === 'set by xclip');
    assert.deepEqual(await sdk.getDesktopClipboard({ selection: 'primary' }), { selection: 'primary', text: x('xclip', ['-o', '-selection', 'primary']) });
    owner.kill();
    log('clipboard ok');

    // Screenshots: formats, scale, and pixels equal to what import reads from X.
    const png = decodePng(Buffer.from(await sdk.takeDesktopScreenshot()));
    assert.deepEqual([png.width, png.height], [1024, 768]);
    const half = decodePng(Buffer.from(await sdk.takeDesktopScreenshot({ scale: 0.5 })));
    assert.deepEqual([half.width, half.height], [512, 384]);
    const jpeg = Buffer.from(await sdk.takeDesktopScreenshot({ format: 'jpeg', quality: 50 }));
    assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    const webp = Buffer.from(await sdk.takeDesktopScreenshot({ format: 'webp' }));
    assert.equal(webp.subarray(8, 12).toString(), 'WEBP');
    await sdk.moveDesktopMouse({ x: 1000, y: 740 }); // keep the pointer out of the region
    const region = { x: resized.x, y: resized.y, width: 240, height: 60 };
    const shot = decodePng(Buffer.from(await sdk.takeDesktopRegionScreenshot(region)));
    assert.deepEqual([shot.width, shot.height], [240, 60]);
    const truth = x('import', ['-window', 'root', '-crop', `240x60+${region.x}+${region.y}`, '-depth', '8', 'rgb:-'], { encoding: 'buffer' });
    assert.equal(truth.length, shot.rgb.length);
    assert.ok(truth.equals(shot.rgb), 'region screenshot pixels equal the X screen (ImageMagick import)');
    await problem(sdk.takeDesktopScreenshot({ scale: 3 }), 400, 'desktop_invalid_action');
    await problem(sdk.takeDesktopRegionScreenshot({ x: 0, y: 0, width: 0, height: 5 }), 400, 'desktop_invalid_action');
    log('screenshots ok');

    // Streams: not WebRTC; the answer names the RFB WebSocket.
    assert.deepEqual(await sdk.getDesktopStreamStatus(), { active: false });
    const sp = await problem(sdk.startDesktopStream(), 409);
    assert.match(sp.detail, /\/websockify/);
    assert.deepEqual(await sdk.stopDesktopStream(), { active: false });

    // open goes through xdg-open.
    const opened = await sdk.openDesktopTarget({ target: join(process.env.WORK_DIR, 'nothing.txt') });
    assert.ok(opened.pid > 0 && /^proc_\d+$/.test(opened.processId));
    await problem(sdk.launchDesktopApp({ app: 'no-such-app-deskd' }), 404, 'app_not_found');

    // Recordings: deskd's own H.264 fragmented MP4.
    await problem(sdk.stopDesktopRecording(), 409);
    const rec = await sdk.startDesktopRecording({ fps: 10 });
    assert.equal(rec.status, 'recording');
    await problem(sdk.startDesktopRecording({}), 409);
    await problem(sdk.deleteDesktopRecording(rec.id), 409);
    for (let i = 0; i < 5; i++) {
        await sdk.moveDesktopWindow(term.windowId, { x: 100 + i * 40, y: 120 });
        await sleep(150);
    }
    const done = await sdk.stopDesktopRecording();
    assert.equal(done.id, rec.id);
    assert.equal(done.status, 'completed');
    assert.ok(done.bytes > 0 && done.endedAt, JSON.stringify(done));
    assert.ok((await sdk.listDesktopRecordings()).recordings.some((r) => r.id === rec.id));
    assert.deepEqual(await sdk.getDesktopRecording(rec.id), done);
    const mp4 = Buffer.from(await sdk.downloadDesktopRecording(rec.id));
    assert.equal(mp4.length, done.bytes);
    assert.equal(mp4.subarray(4, 8).toString(), 'ftyp');
    await sdk.deleteDesktopRecording(rec.id);
    await problem(sdk.getDesktopRecording(rec.id), 404);
    log('recording ok', done.bytes, 'bytes');

    // Status lists the launched apps and the windows.
    st = await sdk.getDesktopStatus();
    assert.ok(st.processes.some((q) => q.name === 'xterm' && q.pid === term.pid && q.running), JSON.stringify(st.processes));
    assert.ok(st.windows.some((v) => v.id === term.windowId));

    // Stop: X gone, apps told (they died with it), 409 until started again.
    st = await sdk.stopDesktop();
    assert.equal(st.state, 'inactive');
    assert.ok(st.processes.some((q) => q.name === 'xterm' && q.pid === term.pid && !q.running), JSON.stringify(st.processes));
    assert.throws(() => process.kill(term.pid, 0), 'xterm ended with the display');
    assert.throws(() => xdpyinfo(displayNum), 'the X server is gone');
    await problem(sdk.takeDesktopScreenshot(), 409, 'desktop_runtime_inactive');
    await problem(sdk.getDesktopMousePosition(), 409, 'desktop_runtime_inactive');
    st = await sdk.startDesktop();
    assert.equal(st.state, 'active');
    assert.deepEqual(st.resolution, { width: 1440, height: 900, dpi: 96 }, 'the SDK defaults');
    assert.deepEqual(xdpyinfo(displayNum), { width: 1440, height: 900, dpi: 96 });
    const full = decodePng(Buffer.from(await sdk.takeDesktopScreenshot()));
    assert.deepEqual([full.width, full.height], [1440, 900]);
    log('stop and restart ok');
    log('all checks passed');
}

try {
    await main();
} catch (e) {
    console.error('[v1-sdk] FAILED:', e?.stack ?? e, e?.problem ? JSON.stringify(e.problem) : '');
    process.exitCode = 1;
} finally {
    for (const c of children) c.kill();
}
