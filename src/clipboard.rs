//! Clipboard text shared between X applications, RFB clients and the action API.

pub mod shared;
pub mod x11;

use std::sync::Arc;

use crate::desktop::DesktopError;

/// Which X selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// CLIPBOARD (Ctrl+C / Ctrl+V).
    Clipboard,
    /// PRIMARY (select / middle-click).
    Primary,
}

/// Clipboard access.
pub trait Clipboard: Send + Sync {
    /// Own the selection and serve `text` to X applications that ask.
    fn set_text(&self, selection: Selection, text: &str) -> Result<(), DesktopError>;

    /// The selection's current text (asks the owner; blocking, bounded by a timeout).
    fn get_text(&self, selection: Selection) -> Result<Option<String>, DesktopError>;

    /// Receives the new CLIPBOARD text whenever an X application (not deskd) takes ownership.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>>;
}
