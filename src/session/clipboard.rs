//! Clipboard between one client and X: plain Latin-1 cut text, or ExtendedClipboard (UTF-8,
//! notify / request / provide) for clients that announce it.

use rfb::messages::clipboard::flags as clip;
use std::sync::Arc;

use rfb::messages::server::write_server_ext_clipboard;
use rfb::messages::ExtClipboard;

use super::connection::{SessionError, Writer};
use super::Session;
use crate::clipboard::shared::Kind;
use crate::clipboard::Selection;

/// Largest clipboard text offered to ExtendedClipboard clients unsolicited.
pub(super) const MAX_TEXT: u32 = 10 << 20;

impl Session {
    pub(super) async fn ext_clipboard(
        &mut self,
        m: ExtClipboard,
        writer: &Writer,
    ) -> Result<(), SessionError> {
        match m {
            ExtClipboard::Caps { flags, .. } => self.client_clip_caps = Some(flags),
            ExtClipboard::Request { formats } => {
                if formats & clip::TEXT != 0 && !self.view_only {
                    if let Some(text) = self.clipboard_text().await {
                        let m = self.ctx.clip_messages.message(Kind::Provide, text.into());
                        writer.bytes(m.await).await?;
                    }
                }
            }
            ExtClipboard::Peek { .. } => {
                let has = !self.view_only && self.clipboard_text().await.is_some();
                let formats = if has { clip::TEXT } else { 0 };
                let mut b = Vec::new();
                write_server_ext_clipboard(&mut b, &ExtClipboard::Notify { formats });
                writer.bytes(b).await?;
            }
            ExtClipboard::Notify { formats } => {
                if formats & clip::TEXT != 0 && !self.view_only {
                    let mut b = Vec::new();
                    write_server_ext_clipboard(
                        &mut b,
                        &ExtClipboard::Request {
                            formats: clip::TEXT,
                        },
                    );
                    writer.bytes(b).await?;
                }
            }
            m @ ExtClipboard::Provide { .. } => {
                if let Some(text) = m.text() {
                    if !self.view_only {
                        self.set_clipboard(text).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// An X application took the clipboard: tell the client (view-only clients too: they may
    /// copy from the desktop, just not into it).
    pub(super) async fn clipboard_changed(
        &mut self,
        text: Arc<str>,
        writer: &Writer,
    ) -> Result<(), SessionError> {
        let shared = &self.ctx.clip_messages;
        if self.settings.caps.extended_clipboard {
            let caps = self.client_clip_caps.unwrap_or(0);
            if caps & clip::NOTIFY != 0 || caps & clip::PROVIDE == 0 {
                let mut b = Vec::new();
                write_server_ext_clipboard(
                    &mut b,
                    &ExtClipboard::Notify {
                        formats: clip::TEXT,
                    },
                );
                writer.bytes(b).await
            } else {
                writer
                    .bytes(shared.message(Kind::Provide, text).await)
                    .await
            }
        } else {
            writer
                .bytes(shared.message(Kind::CutText, text).await)
                .await
        }
    }

    pub(super) async fn clipboard_text(&mut self) -> Option<String> {
        self.ctx
            .worker
            .call(|d| d.clipboard.get_text(Selection::Clipboard))
            .await
            .and_then(|r| r.ok())
            .flatten()
    }

    pub(super) async fn set_clipboard(&mut self, text: String) {
        let peer = self.peer.clone();
        self.ctx
            .worker
            .run(move |d| {
                if let Err(e) = d.clipboard.set_text(Selection::Clipboard, &text) {
                    tracing::warn!(%peer, error = %e, "setting the clipboard failed");
                }
            })
            .await;
    }
}
