// sandbox-agent's SDK against deskd in attach mode (`--display`, an Xvfb deskd did not start):
// status says active, stop refuses with a problem and leaves X running, screenshots and input
// still work. Outcomes are checked against X with xdpyinfo, xdotool, xev and ImageMagick.
//
// Run by tests/v1_sdk.rs with DESKD_URL, DESKD_TOKEN and DISPLAY_NUM (the attached display)
// set; the test painted an orange 200x120 rectangle at (100, 80) first. Exits non-zero on the
// first failed check.

import assert from 'node:assert/strict';
import {
    SandboxAgent, STARTED_AT, unauthorized, baseUrl, token, displayNum, children, log, x, until, problem, pointer, xdpyinfo, decodePng, startXev,
} from './support.mjs';

async function main() {
    const sdk = await SandboxAgent.connect({ baseUrl, token });
    assert.deepEqual(await sdk.getHealth(), { status: 'ok' });
    await unauthorized();

    // Active from the start, on the display deskd was given, with nothing supervised.
    const screen = xdpyinfo(displayNum);
    const st = await sdk.getDesktopStatus();
    assert.equal(st.state, 'active');
    assert.equal(st.display, `:${displayNum}`);
    assert.deepEqual(st.resolution, screen);
    assert.match(st.startedAt, STARTED_AT);
    assert.deepEqual(st.processes, []);
    log('status ok', JSON.stringify(st));

    // stop refuses: a clear problem, and the X server keeps running.
    const p = await problem(sdk.stopDesktop(), 409, 'desktop_not_managed');
    assert.equal(p.type, 'urn:sandbox-agent:error:desktop_not_managed');
    assert.match(p.detail, new RegExp(`:${displayNum}\\b.*did not start`));
    assert.deepEqual(xdpyinfo(displayNum), screen, 'X still runs');
    assert.equal((await sdk.getDesktopStatus()).state, 'active');
    // start confirms what runs.
    assert.equal((await sdk.startDesktop({})).startedAt, st.startedAt);
    log('stop refused ok', p.detail);

    // Screenshots: the painted rectangle, pixels equal to what import reads from X.
    await sdk.moveDesktopMouse({ x: screen.width - 1, y: screen.height - 1 });
    const full = decodePng(Buffer.from(await sdk.takeDesktopScreenshot()));
    assert.deepEqual([full.width, full.height], [screen.width, screen.height]);
    const at = (img, px, py) => [...img.rgb.subarray((py * img.width + px) * 3, (py * img.width + px) * 3 + 3)];
    assert.deepEqual(at(full, 150, 100), [0xff, 0x80, 0x00]);
    const region = { x: 90, y: 70, width: 220, height: 140 };
    const shot = decodePng(Buffer.from(await sdk.takeDesktopRegionScreenshot(region)));
    const truth = x('import', ['-window', 'root', '-crop', `220x140+90+70`, '-depth', '8', 'rgb:-'], { encoding: 'buffer' });
    assert.ok(truth.equals(shot.rgb), 'region screenshot pixels equal the X screen (ImageMagick import)');
    log('screenshots ok');

    // Input: pointer, a click and typed keys as xev sees them.
    const xev = startXev();
    const win = await until('xev window', async () => (await sdk.listDesktopWindows()).windows.find((v) => v.title === 'Event Tester'));
    const cx = win.x + 100; const cy = win.y + 100;
    const moved = await sdk.moveDesktopMouse({ x: cx, y: cy });
    assert.deepEqual([moved.x, moved.y], [cx, cy]);
    assert.deepEqual(pointer(), { x: cx, y: cy });
    await sdk.clickDesktop({ x: cx, y: cy });
    // Without a window manager focus follows the pointer, which is over xev.
    await sdk.typeDesktopText({ text: 'hi' });
    const expect = async (what, pred) => until(what, () => pred(xev.events)).catch((e) => {
        throw new Error(`${e.message}; xev saw ${JSON.stringify(xev.events)}`);
    });
    await expect('a left click', (ev) => ev.some((e) => e.kind === 'ButtonPress' && e.button === 1 && e.root[0] === cx && e.root[1] === cy));
    await expect('typed keys', (ev) => ev.filter((e) => e.kind === 'KeyPress').map((e) => e.keysym).join(' ') === 'h i');
    log('input ok');
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
