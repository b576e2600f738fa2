//! The one typed action model every adapter maps into: Coder's action endpoint
//! (`action.rs`), the computer-use adapter (`computer_use.rs`) and sandbox-agent's `/v1`
//! (`v1/input.rs`). An [`Action`] is a checked request in native pixels and keysyms; it becomes
//! the input [`Step`]s that run under the desktop's action lock. The services the adapters
//! share live here too: the click table, scroll directions, and the validation of keys, text,
//! modifiers, durations and scroll amounts (errors name the adapter's field and action).

use std::time::Duration;

use super::error::ApiError;
use super::keys::{self, Combo};

/// Longest `type` text accepted, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;
/// Longest hold or wait, in milliseconds.
pub const MAX_DURATION_MS: i64 = 60_000;
/// Most scroll notches in one action.
pub const MAX_SCROLL: i64 = 1000;
/// Most key combinations in one key press request.
pub const MAX_CHORDS: usize = 1000;
/// Most keys held during one click, scroll or drag.
pub const MAX_MODIFIERS: usize = 16;
/// Most clicks in one click.
pub const MAX_CLICKS: i64 = 10;

/// A point in native screen pixels.
pub type Point = (u16, u16);

/// One thing sent to the InputSink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Pointer to native (x, y).
    Move(u16, u16),
    /// Button press (true) or release.
    Button(u8, bool),
    /// Keysym press (true) or release.
    Key(u32, bool),
    /// Pause (holds, slow typing); the action lock is let go meanwhile.
    Sleep(Duration),
    /// Let the X server catch up (long typing).
    Sync,
}

/// A checked input action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move the pointer.
    Move(Point),
    /// Click `count` times with `mods` held, at `at` or where the pointer is.
    Click {
        /// Where.
        at: Option<Point>,
        /// X button number.
        button: u8,
        /// Clicks.
        count: u32,
        /// Keysyms held around the clicks.
        mods: Vec<u32>,
    },
    /// Press or release a button, at `at` or where the pointer is.
    Button {
        /// Where.
        at: Option<Point>,
        /// X button number.
        button: u8,
        /// Press (true) or release.
        down: bool,
    },
    /// Press at `from`, move through intermediate points, release at `to`.
    Drag {
        /// Start (where the pointer is when `None`).
        from: Option<Point>,
        /// End.
        to: Point,
        /// X button number.
        button: u8,
        /// Keysyms held during the drag.
        mods: Vec<u32>,
    },
    /// Wheel notches: `dy` down (negative: up), `dx` right (negative: left).
    Scroll {
        /// Where.
        at: Option<Point>,
        /// Horizontal notches.
        dx: i64,
        /// Vertical notches.
        dy: i64,
        /// Keysyms held while scrolling.
        mods: Vec<u32>,
    },
    /// Press and release each chord in turn.
    Keys(Vec<Combo>),
    /// Press (or release, in reverse order) these keys and leave them so.
    KeyChord {
        /// Keysyms.
        keys: Vec<u32>,
        /// Press (true) or release.
        down: bool,
    },
    /// Hold keys down for a while, then release them.
    Hold {
        /// Keysyms.
        keys: Vec<u32>,
        /// How long.
        duration: Duration,
    },
    /// Type keysyms, pausing `delay` after each.
    Type {
        /// Keysyms.
        keysyms: Vec<u32>,
        /// Pause between characters.
        delay: Duration,
    },
}

impl Action {
    /// The input steps of the action.
    pub fn steps(&self) -> Vec<Step> {
        let mut s = Vec::new();
        match self {
            Action::Move((x, y)) => s.push(Step::Move(*x, *y)),
            Action::Click {
                at,
                button,
                count,
                mods,
            } => {
                move_to(&mut s, *at);
                held(&mut s, mods, |s| {
                    for _ in 0..*count {
                        s.push(Step::Button(*button, true));
                        s.push(Step::Button(*button, false));
                    }
                });
            }
            Action::Button { at, button, down } => {
                move_to(&mut s, *at);
                s.push(Step::Button(*button, *down));
            }
            Action::Drag {
                from,
                to,
                button,
                mods,
            } => {
                move_to(&mut s, *from);
                held(&mut s, mods, |s| {
                    s.push(Step::Button(*button, true));
                    s.push(Step::Sync);
                    // Toolkits want motion past their drag threshold before the release.
                    if let Some((fx, fy)) = from {
                        for i in 1..4i32 {
                            let x = i32::from(*fx) + (i32::from(to.0) - i32::from(*fx)) * i / 4;
                            let y = i32::from(*fy) + (i32::from(to.1) - i32::from(*fy)) * i / 4;
                            s.push(Step::Move(
                                u16::try_from(x.max(0)).unwrap_or(u16::MAX),
                                u16::try_from(y.max(0)).unwrap_or(u16::MAX),
                            ));
                        }
                    }
                    s.push(Step::Move(to.0, to.1));
                    s.push(Step::Sync);
                    s.push(Step::Button(*button, false));
                });
            }
            Action::Scroll { at, dx, dy, mods } => {
                move_to(&mut s, *at);
                held(&mut s, mods, |s| {
                    for (amount, pos, neg) in [(*dy, 5u8, 4u8), (*dx, 7, 6)] {
                        let b = if amount >= 0 { pos } else { neg };
                        for _ in 0..amount.unsigned_abs() {
                            s.push(Step::Button(b, true));
                            s.push(Step::Button(b, false));
                        }
                    }
                });
            }
            Action::Keys(chords) => {
                for c in chords {
                    // With Shift in the chord letters go in as capitals, so the keyboard
                    // keeps Shift down for them (`shift+a` types "A", as xdotool's does).
                    let c = keys::shifted(c);
                    held(&mut s, &c, |_| {});
                }
            }
            Action::KeyChord { keys, down: true } => {
                s.extend(keys.iter().map(|k| Step::Key(*k, true)));
            }
            Action::KeyChord { keys, down: false } => {
                s.extend(keys.iter().rev().map(|k| Step::Key(*k, false)));
            }
            Action::Hold { keys, duration } => {
                held(&mut s, keys, |s| {
                    s.push(Step::Sync);
                    s.push(Step::Sleep(*duration));
                });
            }
            Action::Type { keysyms, delay } => {
                for (i, k) in keysyms.iter().enumerate() {
                    s.push(Step::Key(*k, true));
                    s.push(Step::Key(*k, false));
                    if !delay.is_zero() {
                        s.push(Step::Sleep(*delay));
                    } else if i % 64 == 63 {
                        // Now and then, so a long text does not flood the server.
                        s.push(Step::Sync);
                    }
                }
            }
        }
        s
    }
}

fn move_to(s: &mut Vec<Step>, at: Option<Point>) {
    if let Some((x, y)) = at {
        s.push(Step::Move(x, y));
    }
}

/// `keys` pressed in order around `inner`, released in reverse.
fn held(s: &mut Vec<Step>, keys: &[u32], inner: impl FnOnce(&mut Vec<Step>)) {
    s.extend(keys.iter().map(|k| Step::Key(*k, true)));
    inner(s);
    s.extend(keys.iter().rev().map(|k| Step::Key(*k, false)));
}

/// The click actions of Coder and Anthropic's computer tool: (button, clicks).
pub fn click_kind(action: &str) -> Option<(u8, u32)> {
    Some(match action {
        "left_click" => (1, 1),
        "right_click" => (3, 1),
        "middle_click" => (2, 1),
        "double_click" => (1, 2),
        "triple_click" => (1, 3),
        _ => return None,
    })
}

/// `(dx, dy)` of `amount` notches towards a named direction (a negative amount reverses it).
pub fn scroll_delta(direction: &str, amount: i64) -> Option<(i64, i64)> {
    Some(match direction {
        "up" => (0, -amount),
        "down" => (0, amount),
        "left" => (-amount, 0),
        "right" => (amount, 0),
        _ => return None,
    })
}

fn key_error(field: &str, action: &str, e: keys::KeyError) -> ApiError {
    ApiError::bad(format!("Invalid \"{field}\" for {action} action: {e}."))
}

/// Parse key combinations (`ctrl+a Delete`), bounded in size and count (a key press is an X
/// round trip, so this bounds the time one request holds the desktop).
pub fn key_chords(field: &str, action: &str, text: &str) -> Result<Vec<Combo>, ApiError> {
    if text.len() > MAX_TEXT {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\" for {action} action: {} bytes is longer than the {MAX_TEXT} \
             bytes allowed.",
            text.len()
        )));
    }
    let cs = keys::parse(text).map_err(|e| key_error(field, action, e))?;
    if cs.len() > MAX_CHORDS {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\" for {action} action: {} key combinations is more than the \
             {MAX_CHORDS} allowed.",
            cs.len()
        )));
    }
    Ok(cs)
}

/// The keys held during a click or scroll (`"ctrl+shift"`), at most [`MAX_MODIFIERS`].
pub fn modifier_keys(action: &str, text: Option<&str>) -> Result<Vec<u32>, ApiError> {
    let Some(t) = text else {
        return Ok(Vec::new());
    };
    if t.len() > MAX_TEXT {
        return Err(ApiError::bad(format!(
            "Invalid \"text\" for {action} action: {} bytes is too long.",
            t.len()
        )));
    }
    let keys = keys::modifiers(t).map_err(|e| key_error("text", action, e))?;
    if keys.len() > MAX_MODIFIERS {
        return Err(ApiError::bad(format!(
            "Invalid \"text\" for {action} action: {} keys is more than the {MAX_MODIFIERS} \
             allowed.",
            keys.len()
        )));
    }
    Ok(keys)
}

/// Check text to type and turn it into keysyms.
pub fn type_text(action: &str, text: &str) -> Result<Vec<u32>, ApiError> {
    if text.len() > MAX_TEXT {
        return Err(ApiError::bad(format!(
            "Invalid \"text\" for {action} action: {} bytes is longer than the {MAX_TEXT} \
             bytes allowed.",
            text.len()
        )));
    }
    keys::text_keysyms(text).map_err(|e| key_error("text", action, e))
}

/// A duration in ms, checked against [`MAX_DURATION_MS`].
pub fn duration_ms(field: &str, action: &str, ms: i64) -> Result<Duration, ApiError> {
    if !(0..=MAX_DURATION_MS).contains(&ms) {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\" for {action} action: {ms} ms is outside 0 to \
             {MAX_DURATION_MS} ms."
        )));
    }
    Ok(Duration::from_millis(ms.unsigned_abs()))
}

/// A scroll amount, checked against [`MAX_SCROLL`] in either direction.
pub fn scroll_amount(field: &str, action: &str, amount: i64) -> Result<i64, ApiError> {
    // unsigned_abs: i64::MIN has no positive counterpart (abs() would wrap).
    if amount.unsigned_abs() > MAX_SCROLL.unsigned_abs() {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\" for {action} action: {amount} is more than {MAX_SCROLL} \
             notches."
        )));
    }
    Ok(amount)
}

/// A click count, 1 to [`MAX_CLICKS`].
pub fn click_count(field: &str, action: &str, n: i64) -> Result<u32, ApiError> {
    if !(1..=MAX_CLICKS).contains(&n) {
        return Err(ApiError::bad(format!(
            "Invalid \"{field}\" for {action} action: {n}; use 1 to {MAX_CLICKS}."
        )));
    }
    Ok(n.unsigned_abs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_of_each_action() {
        let click = Action::Click {
            at: Some((1, 2)),
            button: 1,
            count: 2,
            mods: vec![0xffe3],
        };
        assert_eq!(
            click.steps(),
            vec![
                Step::Move(1, 2),
                Step::Key(0xffe3, true),
                Step::Button(1, true),
                Step::Button(1, false),
                Step::Button(1, true),
                Step::Button(1, false),
                Step::Key(0xffe3, false),
            ]
        );
        let scroll = Action::Scroll {
            at: None,
            dx: -2,
            dy: 3,
            mods: vec![],
        };
        let s = scroll.steps();
        assert_eq!(s.iter().filter(|x| **x == Step::Button(5, true)).count(), 3);
        assert_eq!(s.iter().filter(|x| **x == Step::Button(6, true)).count(), 2);
        let drag = Action::Drag {
            from: Some((0, 0)),
            to: (8, 8),
            button: 3,
            mods: vec![],
        };
        let s = drag.steps();
        assert_eq!(s[1], Step::Button(3, true));
        assert_eq!(s[s.len() - 1], Step::Button(3, false));
        assert!(s.contains(&Step::Move(4, 4)));
        let hold = Action::Hold {
            keys: vec![0xffe1],
            duration: Duration::from_millis(5),
        };
        assert!(hold
            .steps()
            .contains(&Step::Sleep(Duration::from_millis(5))));
        let keys = Action::Keys(vec![vec![0xffe1, 0x61]]);
        assert_eq!(keys.steps()[1], Step::Key(0x41, true));
        let typed = Action::Type {
            keysyms: vec![0x61, 0x62],
            delay: Duration::from_millis(3),
        };
        assert_eq!(typed.steps().len(), 6);
    }

    #[test]
    fn shared_services() {
        assert_eq!(click_kind("triple_click"), Some((1, 3)));
        assert_eq!(click_kind("click"), None);
        assert_eq!(scroll_delta("up", 3), Some((0, -3)));
        assert_eq!(scroll_delta("left", -2), Some((2, 0)));
        assert!(scroll_amount("scroll_amount", "scroll", i64::MIN).is_err());
        assert!(click_count("count", "click", 11).is_err());
        assert!(duration_ms("duration", "wait", -1).is_err());
        assert!(key_chords("text", "key", "ctrl+Bogus").is_err());
        assert!(modifier_keys("click", Some(&"a+".repeat(20))).is_err());
    }
}
