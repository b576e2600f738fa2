// Decode RFB FramebufferUpdate messages with noVNC's own decoders (from npm) and write the
// resulting framebuffer as RGBA, so Rust tests can compare our encoders' output pixel for pixel
// against an implementation we did not write.
//
// Usage: node novnc-decode.mjs <input.bin> <output.rgba>
// input.bin: u16 width, u16 height (big-endian), u8 depth (24, or 8 for noVNC's 8-bit mode),
// then any number of FramebufferUpdate messages (type 0, pad, u16 count, rectangles).
// output.rgba: width*height*4 bytes; pixels no rectangle touched stay (0, 0, 0, 0).
// JPEG and PNG rectangles (Tight, TightPNG) cannot be decoded without a browser; their payloads
// are written to <output.rgba>.<n>.jpg|png and listed on stdout as JSON lines, and
// <output.rgba>.owner (int32 LE per pixel) says which image last drew each pixel (-1: none), so
// a later rectangle drawn over an image wins as it does in noVNC's ordered render queue.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const novnc = join(here, "..", "..", "web", "node_modules", "@novnc", "novnc", "core");

// websock.js reads WebSocket's state constants at load time (Node 20 has none) and
// util/logging.js looks for a browser `window`.
globalThis.window ??= globalThis;
globalThis.WebSocket ??= { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 };
const Websock = (await import(join(novnc, "websock.js"))).default;
const load = async (name) => (await import(join(novnc, "decoders", name))).default;
const decoders = {
    0: new (await load("raw.js"))(),
    1: new (await load("copyrect.js"))(),
    5: new (await load("hextile.js"))(),
    6: new (await load("zlib.js"))(),
    7: new (await load("tight.js"))(),
    16: new (await load("zrle.js"))(),
    [-260]: new (await load("tightpng.js"))(),
};

const [input, output] = process.argv.slice(2);
const bytes = new Uint8Array(readFileSync(input));

// A receive queue holding the whole input, read through noVNC's own Websock methods.
const sock = Object.create(Websock.prototype);
sock._rQ = bytes;
sock._rQi = 0;
sock._rQlen = bytes.length;

const width = sock.rQshift16();
const height = sock.rQshift16();
const depth = sock.rQshift8();
const fb = new Uint8Array(width * height * 4);
const owner = new Int32Array(width * height).fill(-1);

function own(x, y, w, h, who) {
    for (let j = y; j < y + h; j++) {
        owner.fill(who, j * width + x, j * width + x + w);
    }
}

function check(x, y, w, h, what) {
    if (x < 0 || y < 0 || w < 0 || h < 0 || x + w > width || y + h > height) {
        throw new Error(`${what} ${x},${y} ${w}x${h} outside ${width}x${height}`);
    }
}

let images = 0;
const display = {
    fillRect(x, y, w, h, color) {
        check(x, y, w, h, "fillRect");
        own(x, y, w, h, -1);
        for (let j = y; j < y + h; j++) {
            for (let i = x; i < x + w; i++) {
                fb.set([color[0], color[1], color[2], 255], (j * width + i) * 4);
            }
        }
    },
    blitImage(x, y, w, h, arr, offset) {
        check(x, y, w, h, "blitImage");
        own(x, y, w, h, -1);
        const src = new Uint8Array(arr.buffer, arr.byteOffset + offset, w * h * 4);
        for (let j = 0; j < h; j++) {
            fb.set(src.subarray(j * w * 4, (j + 1) * w * 4), ((y + j) * width + x) * 4);
        }
    },
    copyImage(ox, oy, x, y, w, h) {
        check(ox, oy, w, h, "copyImage source");
        check(x, y, w, h, "copyImage");
        own(x, y, w, h, -1);
        const copy = new Uint8Array(w * h * 4);
        for (let j = 0; j < h; j++) {
            copy.set(fb.subarray(((oy + j) * width + ox) * 4, ((oy + j) * width + ox + w) * 4), j * w * 4);
        }
        for (let j = 0; j < h; j++) {
            fb.set(copy.subarray(j * w * 4, (j + 1) * w * 4), ((y + j) * width + x) * 4);
        }
    },
    imageRect(x, y, w, h, mime, data) {
        check(x, y, w, h, "imageRect");
        const ext = mime === "image/png" ? "png" : "jpg";
        own(x, y, w, h, images);
        const file = `${output}.${images++}.${ext}`;
        writeFileSync(file, data);
        console.log(JSON.stringify({ x, y, w, h, mime, file }));
    },
};

let updates = 0;
while (sock.rQlen() > 0) {
    const type = sock.rQshift8();
    if (type !== 0) {
        throw new Error(`message type ${type} is not FramebufferUpdate`);
    }
    sock.rQskipBytes(1);
    const count = sock.rQshift16();
    for (let n = 0; n < count; n++) {
        if (sock.rQwait("rect header", 12)) {
            throw new Error(`truncated rectangle header in update ${updates}`);
        }
        const x = sock.rQshift16();
        const y = sock.rQshift16();
        const w = sock.rQshift16();
        const h = sock.rQshift16();
        const enc = sock.rQshift32() | 0;
        if (enc === -224) {
            break; // LastRect
        }
        const dec = decoders[enc];
        if (!dec) {
            throw new Error(`no noVNC decoder for encoding ${enc}`);
        }
        if (!dec.decodeRect(x, y, w, h, sock, display, depth)) {
            throw new Error(`truncated data for encoding ${enc} rect ${x},${y} ${w}x${h}`);
        }
    }
    updates++;
}
writeFileSync(output, fb);
writeFileSync(`${output}.owner`, new Uint8Array(owner.buffer));
console.error(`decoded ${updates} updates`);
