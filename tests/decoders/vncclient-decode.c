/*
 * Decode RFB FramebufferUpdate messages with Debian's libvncclient (libvncserver-dev) and write
 * the resulting framebuffer in the client pixel format, so Rust tests can compare our encoders'
 * output with an implementation we did not write, in any pixel format (8/16/32 bpp, either
 * byte order).
 *
 * Usage: vncclient-decode <input.bin> <output.fb>
 * input.bin: u16 width, u16 height, u16 update count (big-endian), a 16-byte PIXEL_FORMAT,
 * then the FramebufferUpdate messages. output.fb: width*height*(bpp/8) bytes as libvncclient
 * stores them, then, if a Cursor pseudo-rect arrived: u16 w, h, hot x, hot y (little-endian),
 * the cursor pixels (w*h*(bpp/8)) and its mask (w*h bytes, 0 or 1).
 */
#include <rfb/rfbclient.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int cursor_w = -1, cursor_h, cursor_x, cursor_y;
static unsigned char *cursor_px, *cursor_mask;

static void got_cursor(rfbClient *cl, int xhot, int yhot, int w, int h, int bpp) {
    free(cursor_px);
    free(cursor_mask);
    cursor_px = malloc((size_t)w * h * bpp + 1);
    cursor_mask = malloc((size_t)w * h + 1);
    memcpy(cursor_px, cl->rcSource, (size_t)w * h * bpp);
    memcpy(cursor_mask, cl->rcMask, (size_t)w * h);
    cursor_w = w;
    cursor_h = h;
    cursor_x = xhot;
    cursor_y = yhot;
}

static void quiet(const char *format, ...) { (void)format; }

static uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put16(FILE *f, int v) {
    unsigned char b[2] = {v & 0xff, (v >> 8) & 0xff};
    fwrite(b, 1, 2, f);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s input.bin output.fb\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror("input");
        return 2;
    }
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    unsigned char *buf = malloc(size);
    if (fread(buf, 1, size, in) != (size_t)size) {
        perror("read");
        return 2;
    }
    fclose(in);
    int width = be16(buf), height = be16(buf + 2), updates = be16(buf + 4);
    const unsigned char *pf = buf + 6;

    if (!getenv("VNCCLIENT_LOG"))
        rfbClientLog = quiet;
    rfbClient *cl = rfbGetClient(8, 3, 4);
    cl->format.bitsPerPixel = pf[0];
    cl->format.depth = pf[1];
    cl->format.bigEndian = pf[2];
    cl->format.trueColour = pf[3];
    cl->format.redMax = be16(pf + 4);
    cl->format.greenMax = be16(pf + 6);
    cl->format.blueMax = be16(pf + 8);
    cl->format.redShift = pf[10];
    cl->format.greenShift = pf[11];
    cl->format.blueShift = pf[12];
    /* What deskd's ServerInit announces (32 bpp, depth 24, 8-bit channels at 16/8/0).
     * libvncclient reads it: its 16 bpp ZRLE decoder picks 2-byte CPIXELs only when the
     * server's green max is above 31 (otherwise it reads 1-byte "15 bpp" CPIXELs). */
    cl->si.format.bitsPerPixel = 32;
    cl->si.format.depth = 24;
    cl->si.format.bigEndian = 0;
    cl->si.format.trueColour = 1;
    cl->si.format.redMax = 255;
    cl->si.format.greenMax = 255;
    cl->si.format.blueMax = 255;
    cl->si.format.redShift = 16;
    cl->si.format.greenShift = 8;
    cl->si.format.blueShift = 0;
    cl->width = width;
    cl->height = height;
    int bpp = pf[0] / 8;
    cl->frameBuffer = calloc((size_t)width * height, bpp);
    cl->GotCursorShape = got_cursor;
    cl->appData.useRemoteCursor = TRUE;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        return 2;
    }
    pid_t child = fork();
    if (child == 0) {
        /* Play the server: send the updates, then swallow the client's requests until EOF. */
        close(sv[0]);
        const unsigned char *p = buf + 22;
        size_t left = size - 22;
        while (left > 0) {
            ssize_t n = write(sv[1], p, left);
            if (n <= 0)
                _exit(1);
            p += n;
            left -= n;
        }
        char sink[4096];
        while (read(sv[1], sink, sizeof sink) > 0) {
        }
        _exit(0);
    }
    close(sv[1]);
    cl->sock = sv[0];
    for (int i = 0; i < updates; i++) {
        if (!HandleRFBServerMessage(cl)) {
            fprintf(stderr, "libvncclient failed on update %d\n", i);
            return 1;
        }
    }
    close(sv[0]);
    waitpid(child, NULL, 0);

    FILE *out = fopen(argv[2], "wb");
    fwrite(cl->frameBuffer, bpp, (size_t)width * height, out);
    if (cursor_w >= 0) {
        put16(out, cursor_w);
        put16(out, cursor_h);
        put16(out, cursor_x);
        put16(out, cursor_y);
        fwrite(cursor_px, bpp, (size_t)cursor_w * cursor_h, out);
        fwrite(cursor_mask, 1, (size_t)cursor_w * cursor_h, out);
    }
    fclose(out);
    return 0;
}
