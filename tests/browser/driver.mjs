// Drives deskd's viewer page in headless Chromium for the Rust end-to-end tests.
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on stdout:
//   -> {"cmd": "open", "url": "...", "width": 1024, "height": 768}
//   <- {"ok": true, "result": ...}   or   {"ok": false, "error": "..."}
// Commands: open, goto, wait, wait_connected, pixels, eval, click, type, key, viewport, fill,
// value, console, close.
// The page exposes the live noVNC object as window.deskdRfb and its state as window.deskd.

import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// playwright-core lives in web/node_modules, not next to this script.
const require = createRequire(join(here, '..', '..', 'web', 'package.json'));
const { chromium } = require('playwright-core');

let browser = null;
let page = null;
const consoleLines = [];

async function waitConnected(timeoutMs = 30000) {
    await page.waitForFunction(() => window.deskd && window.deskd.connected === true,
        null, { timeout: timeoutMs, polling: 50 });
}

// Where framebuffer pixel (x, y) is on the page, whatever the scaling.
async function pagePoint(x, y) {
    return page.evaluate(([fx, fy]) => {
        const canvas = document.querySelector('#screen canvas');
        const rect = canvas.getBoundingClientRect();
        const rfb = window.deskdRfb;
        const img = rfb.getImageData();
        const sx = rect.width / img.width;
        const sy = rect.height / img.height;
        // Chromium delivers whole-pixel client coordinates and noVNC truncates
        // (client - rect.left) / scale, so aim at the first whole pixel inside (fx, fy).
        return { x: Math.ceil(rect.left + fx * sx), y: Math.ceil(rect.top + fy * sy) };
    }, [x, y]);
}

async function openPage(url, width, height) {
    if (!browser) {
        browser = await chromium.launch({
            executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
            args: ['--no-sandbox', '--headless', '--disable-gpu',
                '--disable-background-networking', '--disable-component-update',
                '--disable-sync', '--force-color-profile=srgb'],
        });
    }
    // One page at a time: close the previous one so its connection ends.
    if (page) await page.context().close();
    const context = await browser.newContext({ viewport: { width, height } });
    page = await context.newPage();
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.goto(url);
}

const commands = {
    async open({ url, width = 1024, height = 768 }) {
        await openPage(url, width, height);
        await waitConnected();
        return true;
    },
    // Open a page without waiting for the connection (e.g. to answer a password prompt).
    async goto({ url, width = 1024, height = 768 }) {
        await openPage(url, width, height);
        return true;
    },
    async wait({ js, timeout = 30000 }) {
        await page.waitForFunction(js, null, { timeout, polling: 50 });
        return true;
    },
    async wait_connected({ timeout = 30000 }) {
        await waitConnected(timeout);
        return true;
    },
    // The picture noVNC shows: the visible canvas when it is unscaled and unclipped (what the
    // user sees), otherwise noVNC's framebuffer. RGBA, base64.
    async pixels() {
        return page.evaluate(() => {
            let img = window.deskdRfb.getImageData();
            const canvas = document.querySelector('#screen canvas');
            if (canvas && canvas.width === img.width && canvas.height === img.height) {
                img = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            }
            let bin = '';
            const d = img.data;
            for (let i = 0; i < d.length; i += 0x8000) {
                bin += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
            }
            return { width: img.width, height: img.height, rgba: btoa(bin) };
        });
    },
    async eval({ js }) {
        return page.evaluate(js);
    },
    async click({ x, y, button = 'left' }) {
        const p = await pagePoint(x, y);
        await page.mouse.move(p.x, p.y);
        await page.mouse.click(p.x, p.y, { button });
        return p;
    },
    async type({ text }) {
        await page.evaluate(() => window.deskdRfb.focus());
        await page.keyboard.type(text, { delay: 20 });
        return true;
    },
    async key({ key }) {
        await page.evaluate(() => window.deskdRfb.focus());
        await page.keyboard.press(key);
        return true;
    },
    async viewport({ width, height }) {
        await page.setViewportSize({ width, height });
        return true;
    },
    async fill({ selector, text }) {
        await page.fill(selector, text);
        return true;
    },
    async value({ selector }) {
        return page.inputValue(selector);
    },
    async console() {
        return consoleLines;
    },
    async close() {
        if (browser) await browser.close();
        browser = null;
        return true;
    },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
    if (!line.trim()) continue;
    let answer;
    try {
        const msg = JSON.parse(line);
        const fn = commands[msg.cmd];
        if (!fn) throw new Error(`unknown command ${msg.cmd}`);
        answer = { ok: true, result: await fn(msg) };
    } catch (e) {
        answer = { ok: false, error: String(e && e.stack ? e.stack : e), console: consoleLines.slice(-20) };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
}
if (browser) await browser.close();
