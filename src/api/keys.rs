//! Key names as agents write them (xdotool syntax: `ctrl+shift+t`, `Return`, `KP_Enter`,
//! `super`, plus common aliases like `Enter`, `Esc`, `cmd`, `PageDown`) turned into X keysyms,
//! and text turned into keysyms for typing. Pure: nothing here touches X.
//!
//! Everything is parsed before anything is pressed, so an unknown name fails the whole request
//! and leaves the keyboard alone.

use std::fmt;

/// One chord: keysyms pressed in order and released in reverse order.
pub type Combo = Vec<u32>;

/// Why a key string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The string had no key in it.
    Empty,
    /// A name that is neither a keysym nor an alias.
    Unknown(String),
    /// A `+` with nothing on one side, e.g. `ctrl+`.
    Malformed(String),
    /// A control character that has no key, e.g. U+0007 in `type` text.
    Unencodable(char),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => write!(f, "no key name given"),
            KeyError::Unknown(n) => write!(f, "unknown key name {n:?}"),
            KeyError::Malformed(n) => write!(f, "malformed key combination {n:?}"),
            KeyError::Unencodable(c) => {
                write!(f, "character U+{:04X} cannot be typed", u32::from(*c))
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Modifier words, matched case-insensitively.
const MODIFIERS: &[(&str, u32)] = &[
    ("shift", 0xffe1),
    ("ctrl", 0xffe3),
    ("control", 0xffe3),
    ("alt", 0xffe9),
    ("option", 0xffe9),
    ("meta", 0xffe7),
    ("super", 0xffeb),
    ("win", 0xffeb),
    ("windows", 0xffeb),
    ("cmd", 0xffeb),
    ("command", 0xffeb),
    ("hyper", 0xffed),
    ("altgr", 0xfe03),
];

/// X keysym names (the X spelling, matched exactly first and then case-insensitively).
const KEYSYMS: &[(&str, u32)] = &[
    ("BackSpace", 0xff08),
    ("Tab", 0xff09),
    ("Linefeed", 0xff0a),
    ("Clear", 0xff0b),
    ("Return", 0xff0d),
    ("Pause", 0xff13),
    ("Scroll_Lock", 0xff14),
    ("Sys_Req", 0xff15),
    ("Escape", 0xff1b),
    ("Delete", 0xffff),
    ("Home", 0xff50),
    ("Left", 0xff51),
    ("Up", 0xff52),
    ("Right", 0xff53),
    ("Down", 0xff54),
    ("Prior", 0xff55),
    ("Page_Up", 0xff55),
    ("Next", 0xff56),
    ("Page_Down", 0xff56),
    ("End", 0xff57),
    ("Begin", 0xff58),
    ("Select", 0xff60),
    ("Print", 0xff61),
    ("Execute", 0xff62),
    ("Insert", 0xff63),
    ("Undo", 0xff65),
    ("Redo", 0xff66),
    ("Menu", 0xff67),
    ("Find", 0xff68),
    ("Cancel", 0xff69),
    ("Help", 0xff6a),
    ("Break", 0xff6b),
    ("Mode_switch", 0xff7e),
    ("Num_Lock", 0xff7f),
    ("KP_Space", 0xff80),
    ("KP_Tab", 0xff89),
    ("KP_Enter", 0xff8d),
    ("KP_F1", 0xff91),
    ("KP_F2", 0xff92),
    ("KP_F3", 0xff93),
    ("KP_F4", 0xff94),
    ("KP_Home", 0xff95),
    ("KP_Left", 0xff96),
    ("KP_Up", 0xff97),
    ("KP_Right", 0xff98),
    ("KP_Down", 0xff99),
    ("KP_Prior", 0xff9a),
    ("KP_Page_Up", 0xff9a),
    ("KP_Next", 0xff9b),
    ("KP_Page_Down", 0xff9b),
    ("KP_End", 0xff9c),
    ("KP_Begin", 0xff9d),
    ("KP_Insert", 0xff9e),
    ("KP_Delete", 0xff9f),
    ("KP_Equal", 0xffbd),
    ("KP_Multiply", 0xffaa),
    ("KP_Add", 0xffab),
    ("KP_Separator", 0xffac),
    ("KP_Subtract", 0xffad),
    ("KP_Decimal", 0xffae),
    ("KP_Divide", 0xffaf),
    ("KP_0", 0xffb0),
    ("KP_1", 0xffb1),
    ("KP_2", 0xffb2),
    ("KP_3", 0xffb3),
    ("KP_4", 0xffb4),
    ("KP_5", 0xffb5),
    ("KP_6", 0xffb6),
    ("KP_7", 0xffb7),
    ("KP_8", 0xffb8),
    ("KP_9", 0xffb9),
    ("Shift_L", 0xffe1),
    ("Shift_R", 0xffe2),
    ("Control_L", 0xffe3),
    ("Control_R", 0xffe4),
    ("Caps_Lock", 0xffe5),
    ("Shift_Lock", 0xffe6),
    ("Meta_L", 0xffe7),
    ("Meta_R", 0xffe8),
    ("Alt_L", 0xffe9),
    ("Alt_R", 0xffea),
    ("Super_L", 0xffeb),
    ("Super_R", 0xffec),
    ("Hyper_L", 0xffed),
    ("Hyper_R", 0xffee),
    ("ISO_Level3_Shift", 0xfe03),
    ("ISO_Left_Tab", 0xfe20),
    ("space", 0x20),
    ("exclam", 0x21),
    ("quotedbl", 0x22),
    ("numbersign", 0x23),
    ("dollar", 0x24),
    ("percent", 0x25),
    ("ampersand", 0x26),
    ("apostrophe", 0x27),
    ("quoteright", 0x27),
    ("parenleft", 0x28),
    ("parenright", 0x29),
    ("asterisk", 0x2a),
    ("plus", 0x2b),
    ("comma", 0x2c),
    ("minus", 0x2d),
    ("period", 0x2e),
    ("slash", 0x2f),
    ("colon", 0x3a),
    ("semicolon", 0x3b),
    ("less", 0x3c),
    ("equal", 0x3d),
    ("greater", 0x3e),
    ("question", 0x3f),
    ("at", 0x40),
    ("bracketleft", 0x5b),
    ("backslash", 0x5c),
    ("bracketright", 0x5d),
    ("asciicircum", 0x5e),
    ("underscore", 0x5f),
    ("grave", 0x60),
    ("quoteleft", 0x60),
    ("braceleft", 0x7b),
    ("bar", 0x7c),
    ("braceright", 0x7d),
    ("asciitilde", 0x7e),
    ("XF86AudioLowerVolume", 0x1008_ff11),
    ("XF86AudioMute", 0x1008_ff12),
    ("XF86AudioRaiseVolume", 0x1008_ff13),
    ("XF86AudioPlay", 0x1008_ff14),
    ("XF86AudioStop", 0x1008_ff15),
    ("XF86AudioPrev", 0x1008_ff16),
    ("XF86AudioNext", 0x1008_ff17),
    ("XF86HomePage", 0x1008_ff18),
    ("XF86Search", 0x1008_ff1b),
    ("XF86Back", 0x1008_ff26),
    ("XF86Forward", 0x1008_ff27),
    ("XF86Refresh", 0x1008_ff29),
    ("XF86Copy", 0x1008_ff57),
    ("XF86Cut", 0x1008_ff58),
    ("XF86Paste", 0x1008_ff6d),
];

/// Names agents use that X does not (case-insensitive).
const ALIASES: &[(&str, u32)] = &[
    ("enter", 0xff0d),
    ("esc", 0xff1b),
    ("backspace", 0xff08),
    ("bksp", 0xff08),
    ("del", 0xffff),
    ("ins", 0xff63),
    ("pageup", 0xff55),
    ("pgup", 0xff55),
    ("pagedown", 0xff56),
    ("pgdn", 0xff56),
    ("arrowup", 0xff52),
    ("arrowdown", 0xff54),
    ("arrowleft", 0xff51),
    ("arrowright", 0xff53),
    ("spacebar", 0x20),
    ("capslock", 0xffe5),
    ("numlock", 0xff7f),
    ("scrolllock", 0xff14),
    ("printscreen", 0xff61),
    ("prtsc", 0xff61),
    ("apps", 0xff67),
    ("contextmenu", 0xff67),
    ("kp_enter", 0xff8d),
    ("volumeup", 0x1008_ff13),
    ("volumedown", 0x1008_ff11),
    ("volumemute", 0x1008_ff12),
];

/// Function keys F1..F35 are consecutive keysyms from 0xffbe.
fn function_key(name: &str) -> Option<u32> {
    let n: u32 = name.strip_prefix(['F', 'f'])?.parse().ok()?;
    (1..=35).contains(&n).then(|| 0xffbe + n - 1)
}

/// `0xff0d` (a raw keysym) or `U20AC` / `U+20AC` (a Unicode code point).
fn numeric(name: &str) -> Option<u32> {
    if let Some(hex) = name.strip_prefix("0x").or_else(|| name.strip_prefix("0X")) {
        let v = u32::from_str_radix(hex, 16).ok()?;
        return (v != 0 && v <= 0x1fff_ffff).then_some(v);
    }
    let hex = name
        .strip_prefix("U+")
        .or_else(|| name.strip_prefix('U'))
        .or_else(|| name.strip_prefix("u+"))?;
    if hex.len() < 2 || hex.len() > 6 {
        return None;
    }
    let cp = u32::from_str_radix(hex, 16).ok()?;
    char::from_u32(cp).and_then(|c| char_keysym(c).ok())
}

/// The keysym for one key name (not a combination).
pub fn keysym(name: &str) -> Result<u32, KeyError> {
    if name.is_empty() {
        return Err(KeyError::Empty);
    }
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return char_keysym(c);
    }
    let lookup = |table: &[(&str, u32)], exact: bool| {
        table.iter().find_map(|(n, sym)| {
            let hit = if exact {
                *n == name
            } else {
                n.eq_ignore_ascii_case(name)
            };
            hit.then_some(*sym)
        })
    };
    lookup(KEYSYMS, true)
        .or_else(|| lookup(MODIFIERS, false))
        .or_else(|| lookup(KEYSYMS, false))
        .or_else(|| lookup(ALIASES, false))
        .or_else(|| function_key(name))
        .or_else(|| numeric(name))
        .ok_or_else(|| KeyError::Unknown(name.to_owned()))
}

/// One chord such as `ctrl+shift+t` or `ctrl++`.
pub fn combo(chord: &str) -> Result<Combo, KeyError> {
    if chord.is_empty() {
        return Err(KeyError::Empty);
    }
    if chord == "+" {
        return Ok(vec![0x2b]);
    }
    // A trailing "++" means the last key is '+' itself.
    let (head, plus) = match chord.strip_suffix("++") {
        Some(h) => (h, true),
        None => (chord, false),
    };
    let mut syms = Vec::new();
    if !(plus && head.is_empty()) {
        for part in head.split('+') {
            if part.is_empty() {
                return Err(KeyError::Malformed(chord.to_owned()));
            }
            syms.push(keysym(part)?);
        }
    }
    if plus {
        syms.push(0x2b);
    }
    Ok(syms)
}

/// A key string: one or more chords separated by whitespace (`"ctrl+a Delete"`), as
/// `xdotool key` takes them.
pub fn parse(keys: &str) -> Result<Vec<Combo>, KeyError> {
    let combos = keys
        .split_whitespace()
        .map(combo)
        .collect::<Result<Vec<_>, _>>()?;
    if combos.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(combos)
}

/// A chord with its letters in capitals when it holds Shift (see [`crate::api::action::press`]).
pub fn shifted(chord: &[u32]) -> Combo {
    let shift = chord.iter().any(|k| matches!(k, 0xffe1 | 0xffe2));
    chord
        .iter()
        .map(|&k| {
            if shift {
                crate::input::keymap::convert_case(k).1
            } else {
                k
            }
        })
        .collect()
}

/// Modifiers held during a click or scroll (`"shift"`, `"ctrl+shift"`); any key name works.
pub fn modifiers(text: &str) -> Result<Combo, KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    combo(text)
}

/// The keysym that types `c`: Latin-1 directly, anything else as a Unicode keysym; newline is
/// Return and tab is Tab.
pub fn char_keysym(c: char) -> Result<u32, KeyError> {
    let cp = u32::from(c);
    match c {
        '\n' | '\r' => Ok(0xff0d),
        '\t' => Ok(0xff09),
        '\u{8}' => Ok(0xff08),
        '\u{1b}' => Ok(0xff1b),
        '\u{7f}' => Ok(0xffff),
        _ if c.is_control() => Err(KeyError::Unencodable(c)),
        _ if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) => Ok(cp),
        _ => Ok(0x0100_0000 + cp),
    }
}

/// Keysyms typing `text`, one per character (`\r\n` counts as one Return).
pub fn text_keysyms(text: &str) -> Result<Vec<u32>, KeyError> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        out.push(char_keysym(c)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_with_modifiers() {
        assert_eq!(combo("ctrl+shift+t"), Ok(vec![0xffe3, 0xffe1, 0x74]));
        assert_eq!(combo("CTRL+Shift+T"), Ok(vec![0xffe3, 0xffe1, 0x54]));
        assert_eq!(combo("ctrl+l"), Ok(vec![0xffe3, 0x6c]));
        assert_eq!(combo("super"), Ok(vec![0xffeb]));
        assert_eq!(combo("cmd+c"), Ok(vec![0xffeb, 0x63]));
        assert_eq!(combo("win"), Ok(vec![0xffeb]));
        assert_eq!(combo("alt+F4"), Ok(vec![0xffe9, 0xffc1]));
        assert_eq!(combo("ctrl++"), Ok(vec![0xffe3, 0x2b]));
        assert_eq!(combo("+"), Ok(vec![0x2b]));
        assert_eq!(combo("++"), Ok(vec![0x2b]));
    }

    #[test]
    fn names_and_aliases() {
        assert_eq!(keysym("Return"), Ok(0xff0d));
        assert_eq!(keysym("Enter"), Ok(0xff0d));
        assert_eq!(keysym("return"), Ok(0xff0d));
        assert_eq!(keysym("KP_Enter"), Ok(0xff8d));
        assert_eq!(keysym("Esc"), Ok(0xff1b));
        assert_eq!(keysym("Escape"), Ok(0xff1b));
        assert_eq!(keysym("PageDown"), Ok(0xff56));
        assert_eq!(keysym("Page_Down"), Ok(0xff56));
        assert_eq!(keysym("Next"), Ok(0xff56));
        assert_eq!(keysym("Prior"), Ok(0xff55));
        assert_eq!(keysym("F12"), Ok(0xffc9));
        assert_eq!(keysym("f1"), Ok(0xffbe));
        assert_eq!(keysym("F35"), Ok(0xffe0));
        assert_eq!(keysym("space"), Ok(0x20));
        assert_eq!(keysym("BackSpace"), Ok(0xff08));
        assert_eq!(keysym("Backspace"), Ok(0xff08));
        assert_eq!(keysym("minus"), Ok(0x2d));
        assert_eq!(keysym("0xff0d"), Ok(0xff0d));
        assert_eq!(keysym("U+20AC"), Ok(0x0100_20ac));
        assert_eq!(keysym("é"), Ok(0xe9));
        assert_eq!(keysym("€"), Ok(0x0100_20ac));
        assert_eq!(keysym("A"), Ok(0x41));
        assert_eq!(keysym("a"), Ok(0x61));
    }

    #[test]
    fn bad_names_are_reported() {
        assert_eq!(keysym("Bogus"), Err(KeyError::Unknown("Bogus".into())));
        assert_eq!(combo("ctrl+Bogus"), Err(KeyError::Unknown("Bogus".into())));
        assert_eq!(combo("ctrl+"), Err(KeyError::Malformed("ctrl+".into())));
        assert_eq!(combo("+a"), Err(KeyError::Malformed("+a".into())));
        assert_eq!(keysym("F36"), Err(KeyError::Unknown("F36".into())));
        assert_eq!(keysym("F0"), Err(KeyError::Unknown("F0".into())));
        assert_eq!(parse("   "), Err(KeyError::Empty));
        assert!(parse("ctrl+a Nope").is_err());
        assert!(KeyError::Unknown("Nope".into())
            .to_string()
            .contains("Nope"));
    }

    #[test]
    fn sequences() {
        assert_eq!(
            parse("ctrl+a Delete"),
            Ok(vec![vec![0xffe3, 0x61], vec![0xffff]])
        );
    }

    #[test]
    fn text_to_keysyms() {
        assert_eq!(text_keysyms("aZ\n\t"), Ok(vec![0x61, 0x5a, 0xff0d, 0xff09]));
        assert_eq!(text_keysyms("a\r\nb"), Ok(vec![0x61, 0xff0d, 0x62]));
        assert_eq!(
            text_keysyms("ü€😀"),
            Ok(vec![0xfc, 0x0100_20ac, 0x0101_f600])
        );
        assert_eq!(text_keysyms("\u{7}"), Err(KeyError::Unencodable('\u{7}')));
        assert_eq!(modifiers(""), Ok(vec![]));
        assert_eq!(modifiers("ctrl+shift"), Ok(vec![0xffe3, 0xffe1]));
    }
}
