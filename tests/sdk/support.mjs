// Shared by the SDK scripts: the SDK itself (from web/node_modules), the environment the Rust
// tests pass (DESKD_URL, DESKD_TOKEN, DISPLAY_NUM) and checks against X with tools we did not
// write (xdpyinfo, xwininfo, xdotool, xev) plus a PNG decoder.
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
// The SDK lives in web/node_modules, not next to this script (ESM only: import its entry).
const sdkEntry = join(here, '..', '..', 'web', 'node_modules', 'sandbox-agent', 'dist', 'index.js');
export const { SandboxAgent, SandboxAgentError } = await import(pathToFileURL(sdkEntry).href);

export const baseUrl = process.env.DESKD_URL;
export const token = process.env.DESKD_TOKEN;
export const displayNum = Number(process.env.DISPLAY_NUM);
export const xenv = { ...process.env, DISPLAY: `:${displayNum}` };
export const children = [];

// sandbox-agent's timestamps (chrono's to_rfc3339): UTC as +00:00, 0/3/6/9 fraction digits.
export const STARTED_AT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00$/;

// Without the token, /v1 answers exactly as sandbox-agent 0.4.2's `server --token` does
// (status, content type and body), both to a plain request and through the SDK.
export async function unauthorized() {
    const want = {
        type: 'urn:sandbox-agent:error:token_invalid', title: 'Token Invalid', status: 401,
        detail: 'token invalid', details: { message: 'missing or invalid bearer token' },
    };
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
        const r = await fetch(`${baseUrl}/v1/desktop/status`, { headers });
        assert.equal(r.status, 401, 'the /v1 routes need the API token');
        assert.equal(r.headers.get('content-type'), 'application/problem+json');
        assert.deepEqual(await r.json(), want);
    }
    const wrong = await SandboxAgent.connect({ baseUrl, token: 'wrong', waitForHealth: false });
    const p = await problem(wrong.getDesktopStatus(), 401, 'token_invalid');
    assert.deepEqual(p, want);
}

export function log(...a) { console.log('[v1-sdk]', ...a); }
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function x(prog, args, opts = {}) {
    return execFileSync(prog, args, { env: xenv, encoding: opts.encoding ?? 'utf8', timeout: 10000, input: opts.input, maxBuffer: 64 << 20 });
}

export async function until(what, pred, timeoutMs = 3000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(20);
    }
}

export async function problem(promise, status, code) {
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

export function xwininfo(id) {
    const out = x('xwininfo', ['-id', id]);
    const num = (label) => Number(out.match(new RegExp(`${label}:\\s+(-?\\d+)`))[1]);
    return { x: num('Absolute upper-left X'), y: num('Absolute upper-left Y'), width: num('Width'), height: num('Height') };
}

export function pointer() {
    const out = x('xdotool', ['getmouselocation', '--shell']);
    return { x: Number(out.match(/X=(\d+)/)[1]), y: Number(out.match(/Y=(\d+)/)[1]) };
}

export function xdpyinfo(num) {
    const out = execFileSync('xdpyinfo', ['-display', `:${num}`], { env: xenv, encoding: 'utf8', timeout: 10000 });
    const [, w, h] = out.match(/dimensions:\s+(\d+)x(\d+) pixels/);
    const [, dpi] = out.match(/resolution:\s+(\d+)x\d+ dots per inch/);
    return { width: Number(w), height: Number(h), dpi: Number(dpi) };
}

// A PNG's size and RGB pixels (8-bit RGB or RGBA, non-interlaced: what deskd writes).
export function decodePng(buf) {
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
export function startXev() {
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

