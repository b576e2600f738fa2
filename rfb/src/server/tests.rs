//! The engine against a simulated client and link, in virtual time: no sockets, no X.

use super::*;
use crate::encoding::h264;
use crate::encoding::raw::RawEncoder;
use crate::encoding::Encoded;
use crate::handshake::ServerInit;

const W: u16 = 320;
const H: u16 = 240;

/// Writes Raw rectangles but reports them lossy when a JPEG quality is set, under Tight's
/// number: a stand-in for Tight+JPEG whose output the simulated client can decode.
struct FakeJpeg(RawEncoder);

impl Encoder for FakeJpeg {
    fn encoding(&self) -> i32 {
        n::TIGHT
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        rects: &[Rect],
        params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let mut e = self.0.encode(frame, rects, params, out)?;
        if params.quality_level.is_some() {
            e.lossy = rects.to_vec();
        }
        Ok(e)
    }
}

/// Stands in for H.264: one rectangle of the whole frame, the pixels in Raw's layout as the
/// "access unit", with ResetAllContexts after [`Encoder::reset`]; lossy like the real one.
struct FakeVideo {
    reset: bool,
}

impl Encoder for FakeVideo {
    fn encoding(&self) -> i32 {
        h264::ENCODING
    }

    fn encode(
        &mut self,
        frame: &FrameView<'_>,
        _rects: &[Rect],
        _params: &EncodeParams,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, EncodeError> {
        let flags = if std::mem::take(&mut self.reset) {
            h264::RESET_ALL_CONTEXTS
        } else {
            0
        };
        let bounds = frame.bounds();
        let mut picture = Vec::new();
        for y in 0..frame.height {
            picture.extend_from_slice(frame.row(0, y, frame.width));
        }
        h264::write_rect(out, &bounds, flags, &picture).unwrap();
        Ok(Encoded {
            rects: 1,
            lossy: vec![bounds],
        })
    }

    fn reset(&mut self) {
        self.reset = true;
    }
}

#[derive(Debug)]
struct FakeHost;

impl HostEncoders for FakeHost {
    fn encoder(&self, encoding: i32, _w: u16, _h: u16) -> Option<Box<dyn Encoder>> {
        (encoding == h264::ENCODING).then(|| Box::new(FakeVideo { reset: true }) as _)
    }
}

/// What the simulated client saw.
#[derive(Default)]
struct Client {
    buf: Vec<u8>,
    stage: u8,
    fb: Vec<u32>,
    updates: Vec<(Instant, usize)>,
    fences_answered: usize,
    /// (time, rects) of each update, and its rects' (quality, lossless) as the sim saw them.
    bells: usize,
    names: Vec<String>,
    /// Request a new update as soon as one arrives (no continuous updates).
    rerequest: bool,
    /// The encoding of every pixel rectangle received, with its H.264 flags (0 otherwise).
    rects: Vec<(i32, u32)>,
    reading: bool,
}

struct Sim {
    now: Instant,
    s: ServerSession,
    frame: Vec<u8>,
    /// Bytes the driver holds, not yet accepted by the socket.
    pending: Vec<u8>,
    /// Bytes in the bottleneck: (time they finish leaving it, bytes).
    link: VecDeque<(Instant, Vec<u8>)>,
    link_free_at: Instant,
    /// Bytes arriving at the client at a time.
    down: VecDeque<(Instant, Vec<u8>)>,
    up: VecDeque<(Instant, Vec<u8>)>,
    rate: f64,
    delay: Duration,
    /// Bytes the socket + bottleneck queue accept before writes block.
    buffer: usize,
    c: Client,
    /// (quality, lossless) of each job.
    jobs: Vec<(Option<u8>, bool, u64)>,
    max_in_flight: u64,
}

fn config() -> ServerConfig {
    ServerConfig {
        handshake: HandshakeConfig::no_auth(ServerInit::new(W, H, "sim")),
        view_only: false,
        limits: Limits::default(),
        max_clipboard_text: 1 << 20,
        host_encoders: None,
    }
}

impl Sim {
    fn new(rate: f64, delay: Duration, buffer: usize) -> Sim {
        let now = Instant::now();
        let mut s = ServerSession::new(config(), now);
        s.use_encoder(Box::new(FakeJpeg(RawEncoder::new())));
        Sim {
            now,
            s,
            frame: vec![0; usize::from(W) * usize::from(H) * 4],
            pending: Vec::new(),
            link: VecDeque::new(),
            link_free_at: now,
            down: VecDeque::new(),
            up: VecDeque::new(),
            rate,
            delay,
            buffer,
            c: Client {
                fb: vec![0; usize::from(W) * usize::from(H)],
                reading: true,
                ..Client::default()
            },
            jobs: Vec::new(),
            max_in_flight: 0,
        }
    }

    fn send_up(&mut self, b: Vec<u8>) {
        self.up.push_back((self.now + self.delay, b));
    }

    /// Paint `rect` with `colour` and tell the engine.
    fn paint(&mut self, r: Rect, colour: u32) {
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                let i = (usize::from(y) * usize::from(W) + usize::from(x)) * 4;
                self.frame[i..i + 4].copy_from_slice(&colour.to_le_bytes());
            }
        }
        self.s.frame_changed(&Region::from_rect(r), W, H);
    }

    fn view(&self) -> FrameView<'_> {
        FrameView {
            data: &self.frame,
            width: W,
            height: H,
            stride: usize::from(W) * 4,
        }
    }

    /// One driver iteration at the current time.
    fn pump(&mut self) {
        while self.up.front().is_some_and(|(t, _)| *t <= self.now) {
            let (_, b) = self.up.pop_front().unwrap();
            self.s.receive(&b, self.now).unwrap();
        }
        self.s.handle_timeout(self.now).unwrap();
        while self.s.poll_event().is_some() {}
        if let Some(job) = self.s.poll_update(self.now).unwrap() {
            let q = job.params().quality_level;
            let lossless = job.is_lossless_refresh();
            let area: u64 = job.rects().iter().map(Rect::area).sum();
            let enc = job.encode(&self.view());
            self.jobs.push((q, lossless, area));
            self.s.update_encoded(enc, self.now).unwrap();
        }
        if let Some(b) = self.s.poll_transmit() {
            self.pending.extend_from_slice(&b);
        }
        // Bytes leave the bottleneck at `rate`, then travel `delay`.
        while self.link.front().is_some_and(|(t, _)| *t <= self.now) {
            let (t, b) = self.link.pop_front().unwrap();
            self.down.push_back((t + self.delay, b));
        }
        let queued: usize = self.link.iter().map(|(_, b)| b.len()).sum();
        let room = self.buffer.saturating_sub(queued).min(self.pending.len());
        if room > 0 {
            let chunk: Vec<u8> = self.pending.drain(..room).collect();
            let start = self.link_free_at.max(self.now);
            self.link_free_at = start + Duration::from_secs_f64(chunk.len() as f64 / self.rate);
            self.link.push_back((self.link_free_at, chunk));
            self.s.transmitted(room, self.now);
        }
        self.max_in_flight = self.max_in_flight.max(self.s.congestion().in_flight());
        if self.c.reading {
            while self.down.front().is_some_and(|(t, _)| *t <= self.now) {
                let (_, b) = self.down.pop_front().unwrap();
                self.c.buf.extend_from_slice(&b);
                self.client_parse();
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.pump();
            self.now += Duration::from_micros(500);
        }
    }

    fn connect(&mut self, encodings: &[i32]) {
        let step = (self.delay * 3).max(Duration::from_millis(5));
        self.send_up(b"RFB 003.008\n".to_vec());
        self.run_for(step);
        self.send_up(vec![1]);
        self.run_for(step);
        self.send_up(vec![1]);
        self.run_for(step);
        assert!(self.s.is_connected());
        let mut m = vec![2, 0];
        m.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
        for e in encodings {
            m.extend_from_slice(&e.to_be_bytes());
        }
        self.send_up(m);
        self.request(false);
    }

    fn request(&mut self, incremental: bool) {
        let mut m = vec![3, u8::from(incremental), 0, 0, 0, 0];
        m.extend_from_slice(&W.to_be_bytes());
        m.extend_from_slice(&H.to_be_bytes());
        self.send_up(m);
    }

    fn enable_continuous(&mut self) {
        let mut m = vec![150, 1, 0, 0, 0, 0];
        m.extend_from_slice(&W.to_be_bytes());
        m.extend_from_slice(&H.to_be_bytes());
        self.send_up(m);
    }

    /// Parse whole server messages the client holds; answer fences, re-request.
    fn client_parse(&mut self) {
        loop {
            let b = &self.c.buf;
            if self.c.stage < 4 {
                // Version (12), security types (2), result (4), ServerInit (24 + name).
                let need = match self.c.stage {
                    0 => 12,
                    1 => 2,
                    2 => 4,
                    _ => {
                        if b.len() < 24 {
                            return;
                        }
                        24 + u32::from_be_bytes([b[20], b[21], b[22], b[23]]) as usize
                    }
                };
                if b.len() < need {
                    return;
                }
                self.c.buf.drain(..need);
                self.c.stage += 1;
                continue;
            }
            let Some(used) = self.client_message() else {
                return;
            };
            self.c.buf.drain(..used);
        }
    }

    fn client_message(&mut self) -> Option<usize> {
        let b = self.c.buf.clone();
        let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match *b.first()? {
            0 => {
                if b.len() < 4 {
                    return None;
                }
                let count = be16(2);
                let mut at = 4;
                let mut rects = 0;
                let mut done = 0;
                while count == 0xFFFF || done < count {
                    if b.len() < at + 12 {
                        return None;
                    }
                    let (x, y, w, h) = (be16(at), be16(at + 2), be16(at + 4), be16(at + 6));
                    let enc = be32(at + 8) as i32;
                    at += 12;
                    done += 1;
                    match enc {
                        0 => {
                            let len = usize::from(w) * usize::from(h) * 4;
                            if b.len() < at + len {
                                return None;
                            }
                            for row in 0..h {
                                for col in 0..w {
                                    let i = at
                                        + (usize::from(row) * usize::from(w) + usize::from(col))
                                            * 4;
                                    let px =
                                        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                                    let fi = usize::from(y + row) * usize::from(W)
                                        + usize::from(x + col);
                                    self.c.fb[fi] = px;
                                }
                            }
                            at += len;
                            rects += 1;
                            self.c.rects.push((enc, 0));
                        }
                        h264::ENCODING => {
                            // FakeVideo's "picture" is the whole frame in Raw's layout.
                            let Ok(Some((flags, data, used))) = h264::parse_body(&b[at..], 1 << 24)
                            else {
                                return None;
                            };
                            for (i, px) in data.chunks_exact(4).enumerate() {
                                self.c.fb[i] = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
                            }
                            self.c.rects.push((enc, flags));
                            at += used;
                            rects += 1;
                        }
                        n::LAST_RECT => break,
                        n::EXTENDED_DESKTOP_SIZE => {
                            if b.len() < at + 4 {
                                return None;
                            }
                            at += 4 + 16 * usize::from(b[at]);
                        }
                        n::DESKTOP_NAME => {
                            if b.len() < at + 4 {
                                return None;
                            }
                            let len = be32(at) as usize;
                            if b.len() < at + 4 + len {
                                return None;
                            }
                            self.c
                                .names
                                .push(String::from_utf8_lossy(&b[at + 4..at + 4 + len]).into());
                            at += 4 + len;
                        }
                        _ => {}
                    }
                }
                let _ = rects;
                if b.len() < at {
                    return None;
                }
                self.c.updates.push((self.now, at));
                if self.c.rerequest {
                    self.request(true);
                }
                Some(at)
            }
            2 => {
                self.c.bells += 1;
                Some(1)
            }
            150 => Some(1),
            248 => {
                if b.len() < 9 || b.len() < 9 + usize::from(b[8]) {
                    return None;
                }
                let flags = be32(4);
                let len = usize::from(b[8]);
                if flags & fence::REQUEST != 0 {
                    let mut m = vec![248, 0, 0, 0];
                    m.extend_from_slice(&(flags & !fence::REQUEST & 3).to_be_bytes());
                    m.push(b[8]);
                    m.extend_from_slice(&b[9..9 + len]);
                    self.send_up(m);
                    self.c.fences_answered += 1;
                }
                Some(9 + len)
            }
            t => panic!("unexpected server message {t}"),
        }
    }

    fn client_sees(&self, r: Rect, colour: u32) -> bool {
        (r.y..r.y + r.h).all(|y| {
            (r.x..r.x + r.w).all(|x| {
                self.c.fb[usize::from(y) * usize::from(W) + usize::from(x)] & 0xffffff == colour
            })
        })
    }
}

const NOVNC_LIKE: [i32; 7] = [
    n::TIGHT,
    n::RAW,
    n::QUALITY_LEVEL_0 + 6,
    n::FENCE,
    n::CONTINUOUS_UPDATES,
    n::LAST_RECT,
    n::DESKTOP_NAME,
];

#[test]
fn greeting_then_pixels_arrive_exact() {
    let mut sim = Sim::new(10e6, Duration::from_millis(5), 64 * 1024);
    sim.paint(Rect::new(0, 0, W, H), 0x102030);
    sim.connect(&[n::RAW]);
    sim.run_for(Duration::from_millis(200));
    assert!(sim.client_sees(Rect::new(0, 0, W, H), 0x102030));
    sim.paint(Rect::new(10, 10, 5, 5), 0xff0000);
    sim.request(true);
    sim.run_for(Duration::from_millis(50));
    assert!(sim.client_sees(Rect::new(10, 10, 5, 5), 0xff0000));
    assert_eq!(
        sim.c.fences_answered, 0,
        "no fences for a client without Fence"
    );
}

#[test]
fn request_response_pacing_gives_one_update_per_request() {
    let mut sim = Sim::new(100e6, Duration::from_micros(100), 1 << 20);
    sim.c.rerequest = true;
    sim.connect(&[n::RAW]);
    sim.run_for(Duration::from_millis(50));
    let before = sim.c.updates.len();
    // 100 small changes a second for one second.
    for i in 0..100u32 {
        sim.paint(Rect::new((i % 30) as u16 * 10, 0, 10, 10), 0x10000 * i);
        sim.run_for(Duration::from_millis(10));
    }
    let got = sim.c.updates.len() - before;
    assert!((95..=105).contains(&got), "{got} updates for 100 changes");
}

#[test]
fn fences_measure_rtt_and_bandwidth() {
    // 8 Mbit/s, 40 ms RTT.
    let mut sim = Sim::new(1e6, Duration::from_millis(20), 32 * 1024);
    sim.connect(&NOVNC_LIKE);
    sim.enable_continuous();
    for i in 0..30u32 {
        sim.paint(Rect::new(0, 0, W, H), 0x010101 * i);
        sim.run_for(Duration::from_millis(33));
    }
    let cc = sim.s.congestion();
    let base = cc.base_rtt().unwrap();
    assert!(
        base >= Duration::from_millis(40) && base < Duration::from_millis(50),
        "{base:?}"
    );
    let bw = cc.bandwidth().unwrap();
    assert!((0.7e6..1.4e6).contains(&bw), "bandwidth {bw}");
    assert!(sim.c.fences_answered > 2);
}

#[test]
fn slow_link_skips_stale_frames_and_keeps_echo_fast() {
    // 8 Mbit/s, 40 ms RTT, a full-screen animation at 30 Hz (300 KB per frame as Raw: the
    // link carries about three a second).
    let mut sim = Sim::new(1e6, Duration::from_millis(20), 32 * 1024);
    sim.connect(&NOVNC_LIKE);
    sim.enable_continuous();
    let mut echoes = Vec::new();
    for i in 0..90u32 {
        sim.paint(Rect::new(0, 20, W, H - 20), 0x010203 * (i % 50));
        if i % 10 == 5 {
            // A key echo in the top strip.
            let colour = 0xff0000 + i;
            sim.paint(Rect::new(0, 0, 8, 16), colour);
            let t0 = sim.now;
            let end = t0 + Duration::from_secs(3);
            while !sim.client_sees(Rect::new(0, 0, 8, 16), colour) && sim.now < end {
                sim.run_for(Duration::from_millis(1));
            }
            echoes.push(sim.now - t0);
        }
        sim.run_for(Duration::from_millis(33));
    }
    echoes.sort();
    let median = echoes[echoes.len() / 2];
    // One full frame (about 300 ms here) at most ahead of the echo, plus the RTT: the bytes in
    // flight never pile up seconds of stale frames.
    assert!(
        median < Duration::from_millis(700),
        "echo median {median:?} ({echoes:?})"
    );
    // Stale frames were skipped: far fewer updates than frames drawn.
    assert!(sim.jobs.len() < 60, "{} updates", sim.jobs.len());
    // In flight stays near one update plus the window.
    assert!(
        sim.max_in_flight < 600_000,
        "in flight {}",
        sim.max_in_flight
    );
    // Under this pressure the JPEG quality went down.
    assert!(
        sim.jobs.iter().any(|j| j.0.is_some_and(|q| q < 6)),
        "{:?}",
        sim.jobs
    );
}

#[test]
fn a_client_that_stops_reading_holds_at_most_one_update() {
    let mut sim = Sim::new(1e6, Duration::from_millis(5), 16 * 1024);
    sim.connect(&NOVNC_LIKE);
    sim.enable_continuous();
    sim.run_for(Duration::from_millis(100));
    sim.c.reading = false;
    // The client stops answering fences too (they sit in its unread bytes).
    for i in 0..100u32 {
        sim.paint(Rect::new(0, 0, W, H), i);
        sim.run_for(Duration::from_millis(20));
    }
    let one_frame = u64::from(W) * u64::from(H) * 4 + 1024;
    assert!(
        (sim.pending.len() as u64) <= one_frame,
        "driver holds {} bytes",
        sim.pending.len()
    );
    assert!(
        sim.jobs.len() < 10,
        "{} updates encoded for a stuck client",
        sim.jobs.len()
    );
}

#[test]
fn lossy_areas_are_refreshed_losslessly_once_still() {
    let mut sim = Sim::new(100e6, Duration::from_millis(1), 1 << 20);
    sim.connect(&NOVNC_LIKE);
    sim.enable_continuous();
    // The first full update went out lossy and is refreshed once still.
    sim.run_for(Duration::from_millis(400));
    assert!(
        sim.jobs.iter().any(|j| j.1),
        "initial refresh: {:?}",
        sim.jobs
    );
    sim.jobs.clear();
    // Moving for a while: no refresh while it moves.
    for i in 0..10u32 {
        sim.paint(Rect::new(0, 0, 100, 100), i);
        sim.run_for(Duration::from_millis(33));
    }
    assert!(
        sim.jobs.iter().all(|j| !j.1),
        "refresh of a moving area: {:?}",
        sim.jobs
    );
    let still = sim.now;
    sim.run_for(Duration::from_millis(400));
    let refreshes: Vec<_> = sim.jobs.iter().filter(|j| j.1).collect();
    assert_eq!(refreshes.len(), 1, "{:?}", sim.jobs);
    assert_eq!(refreshes[0].0, None, "refresh without JPEG");
    assert_eq!(refreshes[0].2, 100 * 100);
    let _ = still;
    // And nothing more once everything is exact.
    let n = sim.jobs.len();
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.jobs.len(), n);
    assert_eq!(sim.s.poll_timeout(), None, "idle: no timer");
}

#[test]
fn name_and_bell_reach_the_client() {
    let mut sim = Sim::new(10e6, Duration::from_millis(1), 1 << 20);
    sim.connect(&NOVNC_LIKE);
    sim.enable_continuous();
    sim.run_for(Duration::from_millis(50));
    sim.s.set_name("new name");
    sim.s.bell();
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.c.names, ["new name"]);
    assert_eq!(sim.c.bells, 1);
}

#[test]
fn without_last_rect_many_rects_split_into_several_updates() {
    let mut job = UpdateJob {
        encoder: Box::new(RawEncoder::new()),
        rects: (0..70_000u32)
            .map(|i| Rect::new((i % 300) as u16, (i / 300) as u16, 1, 1))
            .collect(),
        params: EncodeParams::default(),
        pseudo: Vec::new(),
        pseudo_rects: 0,
        last_rect: false,
        lossless: false,
    };
    let frame = vec![7u8; usize::from(W) * usize::from(H) * 4];
    let view = FrameView {
        data: &frame,
        width: W,
        height: H,
        stride: usize::from(W) * 4,
    };
    let rects = std::mem::take(&mut job.rects);
    let (bytes, _) = job.run(&view, &rects, &[]).unwrap();
    // Two messages: 65534 rects, then the rest, each with its own header.
    let rect_len = 12 + 4;
    assert_eq!(bytes.len(), 4 + 4 + 70_000 * rect_len);
    assert_eq!(&bytes[..4], &[0, 0, 0xff, 0xfe]);
    let second = 4 + 65534 * rect_len;
    assert_eq!(&bytes[second..second + 4], &[0, 0, 0x11, 0x72]);
}

#[test]
fn shared_pieces_assemble_like_own_encodes() {
    let job = |last_rect| UpdateJob {
        encoder: Box::new(RawEncoder::new()),
        rects: vec![Rect::new(10, 5, 300, 100), Rect::new(0, 120, 40, 8)],
        params: EncodeParams::default(),
        pseudo: Vec::new(),
        pseudo_rects: 0,
        last_rect,
        lossless: false,
    };
    let frame: Vec<u8> = (0..usize::from(W) * usize::from(H) * 4)
        .map(|i| (i * 7) as u8)
        .collect();
    let view = FrameView {
        data: &frame,
        width: W,
        height: H,
        stride: usize::from(W) * 4,
    };
    let pieces = job(true).pieces();
    // Cut into the grid's 64-line bands: 10..310 x (5..64, 64..105), and the second rect.
    assert_eq!(pieces.len(), 3);
    let encoded: Vec<Piece> = pieces
        .iter()
        .map(|r| {
            let key = job(true).piece_key(*r, 1);
            crate::encoding::shared::encode_piece(&view, &key).unwrap()
        })
        .collect();
    for last_rect in [true, false] {
        let all: Vec<Option<&Piece>> = encoded.iter().map(Some).collect();
        let some: Vec<Option<&Piece>> = encoded
            .iter()
            .enumerate()
            .map(|(i, p)| (i % 2 == 0).then_some(p))
            .collect();
        let none = vec![None; pieces.len()];
        let a = job(last_rect).encode_pieces(&view, &all).result.unwrap().0;
        let b = job(last_rect).encode_pieces(&view, &some).result.unwrap().0;
        let c = job(last_rect).encode_pieces(&view, &none).result.unwrap().0;
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(&a[..4], &[0, 0, 0, 3], "three rects");
        // Every pixel once: the same size as the unsplit update, with one more rect header.
        let whole = job(last_rect).encode(&view).result.unwrap().0;
        assert_eq!(a.len(), whole.len() + 12);
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut sim = Sim::new(10e6, Duration::from_millis(1), 1 << 20);
    sim.connect(&[n::RAW]);
    sim.run_for(Duration::from_millis(10));
    let mut m = vec![3, 1, 0, 0, 0, 0];
    m.extend_from_slice(&(W + 1).to_be_bytes());
    m.extend_from_slice(&H.to_be_bytes());
    assert!(matches!(
        sim.s.receive(&m, sim.now),
        Err(SessionError::RectOutside { .. })
    ));
    let mut s = ServerSession::new(config(), sim.now);
    assert!(matches!(s.receive(b"RFB 003", sim.now), Ok(())));
    assert!(matches!(
        s.handle_timeout(sim.now + HANDSHAKE_TIMEOUT),
        Err(SessionError::HandshakeTimeout)
    ));
}

#[test]
fn video_while_the_screen_moves_then_exact_once_still() {
    let mut sim = Sim::new(100e6, Duration::from_millis(2), 1 << 20);
    let mut config = config();
    config.host_encoders = Some(Arc::new(FakeHost));
    sim.s = ServerSession::new(config, sim.now);
    sim.s.use_encoder(Box::new(FakeJpeg(RawEncoder::new())));
    let mut novnc = NOVNC_LIKE.to_vec();
    novnc.insert(0, h264::ENCODING);
    sim.connect(&novnc);
    sim.enable_continuous();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.s.settings().encoding,
        n::TIGHT,
        "50 is never the general encoding"
    );
    // A one-off repaint and small changes: no video.
    sim.paint(Rect::new(0, 0, W, H), 0x203040);
    sim.run_for(Duration::from_millis(500));
    for i in 0..10u32 {
        sim.paint(Rect::new(10, 10, 20, 20), 0x10101 * i);
        sim.run_for(Duration::from_millis(33));
    }
    assert!(sim.c.rects.iter().all(|(e, _)| *e != h264::ENCODING));

    // A full-screen animation at 30 Hz: video after a quarter of a second, starting with a
    // reset; then every frame is video.
    let start = sim.c.rects.len();
    for i in 0..30u32 {
        sim.paint(Rect::new(0, 0, W, H), 0x0100 * i + 7);
        sim.run_for(Duration::from_millis(33));
        if i == 20 {
            // A non-incremental request restarts the client's decoders.
            sim.request(false);
        }
    }
    let during = &sim.c.rects[start..];
    let first = during
        .iter()
        .position(|(e, _)| *e == h264::ENCODING)
        .expect("video started");
    assert!(
        (7..=10).contains(&first),
        "video from update {first}: {during:?}"
    );
    assert_eq!(during[first].1, h264::RESET_ALL_CONTEXTS);
    assert!(during[first..].iter().all(|(e, _)| *e == h264::ENCODING));
    let resets = during[first..].iter().filter(|(_, f)| *f != 0).count();
    assert_eq!(
        resets, 2,
        "a reset at the start and one after the full request"
    );
    assert!(sim.client_sees(Rect::new(0, 0, W, H), 0x0100 * 29 + 7));

    // Still: the lossless refresh covers the whole video area, and video is over.
    let still = sim.c.rects.len();
    let jobs = sim.jobs.len();
    sim.run_for(refresh::REFRESH_DELAY + Duration::from_millis(50));
    assert_eq!(sim.c.rects[still..], [(n::RAW, 0)]);
    assert_eq!(
        sim.jobs[jobs..],
        [(None, true, u64::from(W) * u64::from(H))]
    );
    sim.paint(Rect::new(0, 0, W, H), 0x445566);
    sim.run_for(Duration::from_millis(33));
    assert_eq!(
        sim.c.rects.last(),
        Some(&(n::RAW, 0)),
        "a repaint after stillness"
    );
    assert!(sim.client_sees(Rect::new(0, 0, W, H), 0x445566));
}
