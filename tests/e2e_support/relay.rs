//! A user-space bottleneck between a client and a server: the server-to-client direction
//! drains at `rate` through a bounded queue, both directions are delayed by half the RTT.
//! Upstream is read only as fast as the link drains, with small socket buffers, so loopback
//! can't hide megabytes in between.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;

/// Link parameters.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Bottleneck rate, bytes per second (server to client).
    pub rate: f64,
    /// Round-trip time added (half each way).
    pub rtt: Duration,
    /// Bytes the bottleneck queue holds (a router's buffer).
    pub queue: usize,
}

impl Link {
    /// `mbit` Mbit/s, `rtt_ms` ms RTT, a queue of 64 KiB.
    pub fn new(mbit: f64, rtt_ms: u64) -> Link {
        Link {
            rate: mbit * 1e6 / 8.0,
            rtt: Duration::from_millis(rtt_ms),
            queue: 64 * 1024,
        }
    }
}

/// Socket buffer size on the relay's sockets.
const SOCKET_BUFFER: usize = 16 * 1024;
/// Bytes moved at once through the bottleneck (about a packet).
const PACKET: usize = 1448;

/// A running relay; connections accepted on `addr` go to the upstream address.
pub struct Relay {
    pub addr: SocketAddr,
}

/// Chunks in transit, each with the time it may be delivered, and whether the sender is done.
#[derive(Default)]
struct Transit {
    chunks: VecDeque<(Instant, Vec<u8>)>,
    closed: bool,
}

/// Bytes in transit with the time each may be delivered.
#[derive(Default)]
struct DelayLine {
    q: Mutex<Transit>,
    cv: Condvar,
}

impl DelayLine {
    fn push(&self, at: Instant, b: Vec<u8>) {
        let mut g = self.q.lock().unwrap();
        g.chunks.push_back((at, b));
        self.cv.notify_all();
    }

    fn close(&self) {
        self.q.lock().unwrap().closed = true;
        self.cv.notify_all();
    }

    /// Deliver everything to `out` at its time until closed and empty.
    fn run(&self, mut out: TcpStream) {
        loop {
            let (at, b) = {
                let mut g = self.q.lock().unwrap();
                loop {
                    if let Some(front) = g.chunks.pop_front() {
                        break front;
                    }
                    if g.closed {
                        let _ = out.shutdown(Shutdown::Write);
                        return;
                    }
                    g = self.cv.wait(g).unwrap();
                }
            };
            let now = Instant::now();
            if at > now {
                thread::sleep(at - now);
            }
            if out.write_all(&b).is_err() {
                return;
            }
        }
    }
}

fn small_buffers(s: &TcpStream) {
    let r = SockRef::from(s);
    let _ = r.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = r.set_send_buffer_size(SOCKET_BUFFER);
    let _ = s.set_nodelay(true);
}

impl Relay {
    /// Start relaying to `upstream` over `link`. Threads end with their connections.
    pub fn start(upstream: SocketAddr, link: Link) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                small_buffers(&client);
                small_buffers(&server);
                relay(client, server, link);
            }
        });
        Relay { addr }
    }
}

fn relay(client: TcpStream, server: TcpStream, link: Link) {
    let half = link.rtt / 2;
    // Client to server: delay only.
    let up = Arc::new(DelayLine::default());
    {
        let up = Arc::clone(&up);
        let mut from = client.try_clone().unwrap();
        thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => up.push(Instant::now() + half, buf[..n].to_vec()),
                }
            }
            up.close();
        });
    }
    {
        let up = Arc::clone(&up);
        let to = server.try_clone().unwrap();
        thread::spawn(move || up.run(to));
    }
    // Server to client: a queue of `link.queue` bytes drained at `link.rate`, then delay.
    let down = Arc::new(DelayLine::default());
    {
        let down = Arc::clone(&down);
        let to = client;
        thread::spawn(move || down.run(to));
    }
    thread::spawn(move || {
        let mut from = server;
        // The queue holds bytes read but not yet through the bottleneck: the time the last
        // queued byte leaves it says how full it is.
        let mut free_at = Instant::now();
        let mut buf = vec![0u8; PACKET];
        loop {
            // Read only when the queue has room for a packet.
            let now = Instant::now();
            let queued = free_at.saturating_duration_since(now).as_secs_f64() * link.rate;
            if queued + PACKET as f64 > link.queue as f64 {
                let wait = (queued + PACKET as f64 - link.queue as f64) / link.rate;
                thread::sleep(Duration::from_secs_f64(wait));
                continue;
            }
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            free_at = free_at.max(now) + Duration::from_secs_f64(n as f64 / link.rate);
            down.push(free_at + half, buf[..n].to_vec());
        }
        down.close();
    });
}
