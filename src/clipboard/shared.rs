//! Server clipboard messages built once per clipboard text and shared by every RFB client.
//!
//! A large clipboard costs one copy and one encoding (ExtendedClipboard Provide is zlib
//! compressed), however many clients ask for it and however often: building runs on a
//! blocking thread, one at a time, and the result is a refcounted [`Bytes`] that each client's
//! writer queue only points to.

use std::sync::Arc;

use bytes::Bytes;
use rfb::messages::server::{write_server_cut_text, write_server_ext_clipboard};
use rfb::messages::ExtClipboard;
use tokio::sync::Mutex;

/// Which server message carries the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ExtendedClipboard Provide (UTF-8, compressed).
    Provide,
    /// ServerCutText (Latin-1).
    CutText,
}

/// The last message built for each kind, keyed by its text.
#[derive(Default)]
pub struct SharedMessages {
    provide: Mutex<Option<(Arc<str>, Bytes)>>,
    cut_text: Mutex<Option<(Arc<str>, Bytes)>>,
    built: std::sync::atomic::AtomicU64,
}

impl SharedMessages {
    /// Nothing built yet.
    pub fn new() -> SharedMessages {
        SharedMessages::default()
    }

    /// How many messages were built so far (each costs a copy and, for Provide, compression).
    pub fn built(&self) -> u64 {
        self.built.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `kind` message for `text`, built now unless the last one was for the same text.
    pub async fn message(&self, kind: Kind, text: Arc<str>) -> Bytes {
        let slot = match kind {
            Kind::Provide => &self.provide,
            Kind::CutText => &self.cut_text,
        };
        // Held while building: concurrent askers wait for this build instead of repeating it.
        let mut slot = slot.lock().await;
        if let Some((t, m)) = slot.as_ref() {
            if Arc::ptr_eq(t, &text) || **t == *text {
                return m.clone();
            }
        }
        let t = Arc::clone(&text);
        let built = tokio::task::spawn_blocking(move || build(kind, &t)).await;
        // Building cannot fail short of a panic; then answer with the message built inline.
        let m = built.unwrap_or_else(|_| build(kind, &text));
        self.built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::global().clipboard_messages_built.add(1);
        *slot = Some((text, m.clone()));
        m
    }
}

/// Encode one clipboard message.
pub fn build(kind: Kind, text: &str) -> Bytes {
    let mut b = Vec::new();
    match kind {
        Kind::Provide => write_server_ext_clipboard(&mut b, &ExtClipboard::provide_text(text)),
        Kind::CutText => write_server_cut_text(&mut b, text),
    }
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_build_per_text_however_many_askers() {
        let shared = Arc::new(SharedMessages::new());
        let text: Arc<str> = "x".repeat(1 << 20).into();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (s, t) = (Arc::clone(&shared), Arc::clone(&text));
            tasks.push(tokio::spawn(
                async move { s.message(Kind::Provide, t).await },
            ));
        }
        let mut first = None;
        for t in tasks {
            let m = t.await.unwrap();
            // Every asker got the same buffer, not a copy.
            let p = *first.get_or_insert(m.as_ptr());
            assert_eq!(m.as_ptr(), p);
        }
        assert_eq!(shared.built(), 1);
        // A different text (equal content, other allocation) is recognised too.
        let same: Arc<str> = "x".repeat(1 << 20).into();
        shared.message(Kind::Provide, same).await;
        assert_eq!(shared.built(), 1);
        shared.message(Kind::Provide, "y".into()).await;
        shared.message(Kind::CutText, "y".into()).await;
        assert_eq!(shared.built(), 3);
        assert_eq!(
            build(Kind::Provide, "y"),
            shared.message(Kind::Provide, "y".into()).await
        );
    }
}
