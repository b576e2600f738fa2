// Drives deskd's /v1 desktop API with sandbox-agent's own SDK (npm `sandbox-agent`) and checks
// every outcome against the X server with tools we did not write: xdpyinfo (size, dpi),
// xwininfo (window geometry), xdotool (pointer, active window), xev (buttons, wheel, keys),
// xclip (clipboard, the primary selection of an xterm drag) and ImageMagick import (pixels).
//
// Run by tests/v1_sdk.rs with DESKD_URL, DESKD_TOKEN, XAUTHORITY, DISPLAY_NUM and WORK_DIR
// set. Exits non-zero with a message on the first failed check.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import {
    SandboxAgent, STARTED_AT, unauthorized, baseUrl, token, displayNum, xenv, children, log, sleep, x, until, problem, xwininfo, pointer, xdpyinfo, decodePng, startXev,
} from './support.mjs';

async function main() {
    const sdk = await SandboxAgent.connect({ baseUrl, token });
    assert.deepEqual(await sdk.getHealth(), { status: 'ok' });
    await unauthorized();

    // Lifecycle: restart on the requested display with the requested size and dpi.
    let st = await sdk.startDesktop({ width: 1024, height: 768, dpi: 120, displayNum });
    assert.equal(st.state, 'active');
    assert.equal(st.display, `:${displayNum}`);
    assert.deepEqual(st.resolution, { width: 1024, height: 768, dpi: 120 });
    assert.match(st.startedAt, STARTED_AT);
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
