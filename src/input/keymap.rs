//! Pure keyboard planning: which keycode produces a keysym and which modifier keys must be
//! pressed or released around it, from the server's core keyboard and modifier mappings.
//!
//! Columns of the core keymap: 0/1 group 1 (plain/shifted), 2/3 group 2 (Mode_switch), 4/5
//! level 3 (ISO_Level3_Shift, AltGr), 6/7 group 2 level 3. A keysym is looked up first under
//! the modifiers already held (so a client holding Shift and sending `A`, or Shift+Return, needs
//! no adjustment); otherwise at the lowest column that has it, and the modifiers that column
//! needs are pressed, and those it must not have released, only around the key press. So
//! ctrl+l arrives as Control + `l`, never with a stray Shift, and Escape never gets Shift.
//! Caps Lock (a latched state, not a held key) is compensated for letters: with it on, the
//! Shift need of a cased key is inverted (XKB's ALPHABETIC type: Lock alone gives the capital,
//! Shift+Lock the small letter), so a client never gets inverted letters.
//!
//! QEMU extended key events carry a keysym and a scancode. [`Keymap::scancode_agrees`] says
//! whether the scancode's key produces that keysym under the modifiers and Caps Lock now in
//! effect: then the scancode is used (non-US layouts, games, shortcuts), otherwise the keysym
//! (text from `keyboard.type`, on-screen keyboards, IMEs, a Caps Lock out of step).

/// `NoSymbol`.
pub const NO_SYMBOL: u32 = 0;
/// `Shift_L`.
pub const XK_SHIFT_L: u32 = 0xffe1;
/// `ISO_Level3_Shift` (AltGr).
pub const XK_ISO_LEVEL3_SHIFT: u32 = 0xfe03;
/// `Mode_switch`.
pub const XK_MODE_SWITCH: u32 = 0xff7e;

/// The modifier state a keysym lives at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    /// Shift held.
    pub shift: bool,
    /// ISO_Level3_Shift held.
    pub level3: bool,
    /// Mode_switch held (group 2).
    pub group2: bool,
}

impl Level {
    const PREFERENCE: [Level; 8] = [
        Level::new(false, false, false),
        Level::new(true, false, false),
        Level::new(false, true, false),
        Level::new(true, true, false),
        Level::new(false, false, true),
        Level::new(true, false, true),
        Level::new(false, true, true),
        Level::new(true, true, true),
    ];

    const fn new(shift: bool, level3: bool, group2: bool) -> Level {
        Level {
            shift,
            level3,
            group2,
        }
    }
}

/// Presses and releases around one key press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    /// The key to press.
    pub keycode: u8,
    /// (keycode, press) to send before the key press.
    pub before: Vec<(u8, bool)>,
    /// (keycode, press) to send after the key press, restoring the modifiers.
    pub after: Vec<(u8, bool)>,
}

/// The server's keyboard mapping as planning needs it.
#[derive(Debug, Clone)]
pub struct Keymap {
    min_keycode: u8,
    per: usize,
    syms: Vec<u32>,
    /// Keycodes of each of the 8 modifiers (Shift, Lock, Control, Mod1..Mod5).
    modmap: [Vec<u8>; 8],
}

/// Modifier index of Shift / Control / Mod1 / Mod4 in the modifier mapping.
const SHIFT: usize = 0;
const CONTROL: usize = 2;
const MOD1: usize = 3;
const MOD4: usize = 6;

impl Keymap {
    /// Build from GetKeyboardMapping (`syms` starting at `min_keycode`, `per` keysyms per
    /// keycode) and GetModifierMapping (`per_mod` keycodes for each of the 8 modifiers).
    pub fn new(min_keycode: u8, per: u8, syms: Vec<u32>, per_mod: u8, modmap: &[u8]) -> Keymap {
        let per_mod = usize::from(per_mod);
        let mut mods: [Vec<u8>; 8] = Default::default();
        for (i, m) in mods.iter_mut().enumerate() {
            if per_mod > 0 {
                *m = modmap
                    .iter()
                    .skip(i * per_mod)
                    .take(per_mod)
                    .copied()
                    .filter(|&k| k != 0)
                    .collect();
            }
        }
        Keymap {
            min_keycode: min_keycode.max(8),
            per: usize::from(per.max(1)),
            syms,
            modmap: mods,
        }
    }

    /// Keysyms per keycode.
    pub fn keysyms_per_keycode(&self) -> usize {
        self.per
    }

    fn max_keycode(&self) -> u8 {
        let n = self.syms.len() / self.per;
        (usize::from(self.min_keycode) + n)
            .saturating_sub(1)
            .min(255) as u8
    }

    /// The keysyms bound to `keycode` (empty when out of range).
    pub fn keysyms(&self, keycode: u8) -> &[u32] {
        let Some(i) = keycode.checked_sub(self.min_keycode) else {
            return &[];
        };
        let start = usize::from(i) * self.per;
        self.syms.get(start..start + self.per).unwrap_or(&[])
    }

    /// Record a binding made with ChangeKeyboardMapping.
    pub fn set_keysyms(&mut self, keycode: u8, syms: &[u32]) {
        let Some(i) = keycode.checked_sub(self.min_keycode) else {
            return;
        };
        let start = usize::from(i) * self.per;
        if let Some(slot) = self.syms.get_mut(start..start + self.per) {
            for (j, s) in slot.iter_mut().enumerate() {
                *s = syms.get(j).copied().unwrap_or(NO_SYMBOL);
            }
        }
    }

    /// The keysym `keycode` produces at `level`, following the core protocol's rules for
    /// missing columns (a missing shifted symbol repeats the unshifted one, case-converted for
    /// letters; a missing group 2 uses group 1).
    pub fn lookup(&self, keycode: u8, level: Level) -> u32 {
        let syms = self.keysyms(keycode);
        let col = |i: usize| syms.get(i).copied().unwrap_or(NO_SYMBOL);
        let mut base = 2 * usize::from(level.group2) + 4 * usize::from(level.level3);
        if col(base) == NO_SYMBOL && col(base + 1) == NO_SYMBOL {
            if level.level3 {
                return NO_SYMBOL;
            }
            base = 0;
        }
        let (lo, hi) = (col(base), col(base + 1));
        let hi = if hi == NO_SYMBOL {
            let (l, u) = convert_case(lo);
            if l != u {
                return if level.shift { u } else { l };
            }
            lo
        } else {
            hi
        };
        if level.shift {
            hi
        } else {
            lo
        }
    }

    fn in_modmap(&self, m: usize, keycode: u8) -> bool {
        self.modmap[m].contains(&keycode)
    }

    /// A keycode that sets `kind` (Shift, Level3 or Mode_switch).
    fn modifier_key(&self, keysym: u32) -> Option<u8> {
        (self.min_keycode..=self.max_keycode()).find(|&k| {
            self.keysyms(k).first() == Some(&keysym) && self.modmap.iter().any(|m| m.contains(&k))
        })
    }

    fn shift_key(&self) -> Option<u8> {
        self.modifier_key(XK_SHIFT_L)
            .or_else(|| self.modmap[SHIFT].first().copied())
    }

    fn can_reach(&self, level: Level) -> bool {
        (!level.shift || self.shift_key().is_some())
            && (!level.level3 || self.modifier_key(XK_ISO_LEVEL3_SHIFT).is_some())
            && (!level.group2 || self.modifier_key(XK_MODE_SWITCH).is_some())
    }

    /// The keycode and level producing `keysym`, lowest column first.
    pub fn find(&self, keysym: u32) -> Option<(u8, Level)> {
        let alts = alternatives(keysym);
        for level in Level::PREFERENCE {
            if !self.can_reach(level) {
                continue;
            }
            for k in self.min_keycode..=self.max_keycode() {
                let syms = self.keysyms(k);
                // Only consider keys that bind something at this level explicitly or by the
                // core fill rules.
                if syms.iter().all(|&s| s == NO_SYMBOL) {
                    continue;
                }
                let got = self.lookup(k, level);
                if got != NO_SYMBOL && alts.contains(&got) {
                    return Some((k, level));
                }
            }
        }
        None
    }

    /// Whether `keycode` is a letter key: its two first columns are the two cases of one
    /// letter (or the second is empty and implied). Caps Lock affects only these.
    fn is_alphabetic(&self, keycode: u8) -> bool {
        let lo = self.lookup(keycode, Level::default());
        let hi = self.lookup(keycode, Level::new(true, false, false));
        let (l, u) = convert_case(lo);
        l != u && lo == l && hi == u
    }

    /// The keysym `keycode` produces at `level` with Caps Lock `lock`.
    pub fn produces(&self, keycode: u8, level: Level, lock: bool) -> u32 {
        let mut level = level;
        if lock && self.is_alphabetic(keycode) {
            level.shift = !level.shift;
        }
        self.lookup(keycode, level)
    }

    /// The modifier level the keys held in `down` select.
    fn held_level(&self, down: &[u8; 32]) -> Level {
        Level {
            shift: !self.held(down, |k| self.in_modmap(SHIFT, k)).is_empty(),
            level3: !self
                .held(down, |k| {
                    self.keysyms(k).first() == Some(&XK_ISO_LEVEL3_SHIFT)
                })
                .is_empty(),
            group2: !self
                .held(down, |k| self.keysyms(k).first() == Some(&XK_MODE_SWITCH))
                .is_empty(),
        }
    }

    /// True when pressing `keycode` with the keys in `down` held and Caps Lock `lock` types
    /// `keysym` (or the key is not a character key the keysym could describe, e.g. a keysym
    /// of 0). A QEMU key event is then sent by scancode; otherwise by keysym.
    pub fn scancode_agrees(&self, keycode: u8, keysym: u32, down: &[u8; 32], lock: bool) -> bool {
        if keysym == NO_SYMBOL || self.keysyms(keycode).iter().all(|&s| s == NO_SYMBOL) {
            return true;
        }
        let got = self.produces(keycode, self.held_level(down), lock);
        alternatives(keysym).contains(&got)
    }

    /// Keycodes currently held (from a 32-byte QueryKeymap bitmap) of each kind.
    fn held(&self, down: &[u8; 32], pred: impl Fn(u8) -> bool) -> Vec<u8> {
        (8u16..256)
            .map(|k| k as u8)
            .filter(|&k| down[usize::from(k / 8)] & (1 << (k % 8)) != 0)
            .filter(|&k| pred(k))
            .collect()
    }

    /// Plan a press of `keysym` given the keys now down (QueryKeymap bitmap) and whether Caps
    /// Lock is on. `None` when the keysym is not in the keymap (bind it to a scratch keycode
    /// first).
    pub fn plan(&self, keysym: u32, down: &[u8; 32], lock: bool) -> Option<KeyPlan> {
        let shift_down = self.held(down, |k| self.in_modmap(SHIFT, k));
        let l3_down = self.held(down, |k| {
            self.keysyms(k).first() == Some(&XK_ISO_LEVEL3_SHIFT)
        });
        let ms_down = self.held(down, |k| self.keysyms(k).first() == Some(&XK_MODE_SWITCH));
        let held = Level {
            shift: !shift_down.is_empty(),
            level3: !l3_down.is_empty(),
            group2: !ms_down.is_empty(),
        };
        let alts = alternatives(keysym);
        // Already reachable as things are held: press it as is.
        let as_is = (self.min_keycode..=self.max_keycode()).find(|&k| {
            self.keysyms(k).iter().any(|&s| s != NO_SYMBOL)
                && alts.contains(&self.produces(k, held, lock))
        });
        if let Some(k) = as_is {
            return Some(KeyPlan {
                keycode: k,
                before: vec![],
                after: vec![],
            });
        }
        // A shortcut such as ctrl+shift+t sent as Control, Shift, `t`: keep Shift.
        let shortcut = held.shift
            && [CONTROL, MOD1, MOD4]
                .iter()
                .any(|&m| !self.held(down, |k| self.in_modmap(m, k)).is_empty());
        let (keycode, mut want) = self.find(keysym)?;
        if shortcut && !want.shift && !want.level3 && !want.group2 {
            let (l, u) = convert_case(self.lookup(keycode, want));
            if l != u {
                return Some(KeyPlan {
                    keycode,
                    before: vec![],
                    after: vec![],
                });
            }
        }
        if lock && self.is_alphabetic(keycode) {
            want.shift = !want.shift;
        }
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut adjust = |need: bool, have: &[u8], key: Option<u8>| {
            if need && have.is_empty() {
                if let Some(k) = key {
                    before.push((k, true));
                    after.push((k, false));
                }
            } else if !need && !have.is_empty() {
                for &k in have {
                    before.push((k, false));
                    after.push((k, true));
                }
            }
        };
        adjust(want.shift, &shift_down, self.shift_key());
        adjust(
            want.level3,
            &l3_down,
            self.modifier_key(XK_ISO_LEVEL3_SHIFT),
        );
        adjust(want.group2, &ms_down, self.modifier_key(XK_MODE_SWITCH));
        after.reverse();
        Some(KeyPlan {
            keycode,
            before,
            after,
        })
    }

    /// Keycodes with no keysym and no modifier role: candidates for scratch bindings.
    pub fn free_keycodes(&self) -> Vec<u8> {
        // Keycode 8 is skipped: some clients treat it specially.
        (self.min_keycode.max(9)..=self.max_keycode())
            .filter(|&k| self.keysyms(k).iter().all(|&s| s == NO_SYMBOL))
            .filter(|&k| !self.modmap.iter().any(|m| m.contains(&k)))
            .collect()
    }
}

/// Keysyms that produce the same character as `keysym`: the Unicode keysym (0x01000000 +
/// code point) and the legacy one, either way round.
pub fn alternatives(keysym: u32) -> [u32; 2] {
    if keysym >= 0x0100_0000 {
        let cp = keysym - 0x0100_0000;
        let legacy = if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) {
            cp
        } else {
            legacy_keysym(cp).unwrap_or(keysym)
        };
        [keysym, legacy]
    } else {
        let uni = keysym_to_char(keysym)
            .map(|c| 0x0100_0000 + c as u32)
            .unwrap_or(keysym);
        [keysym, uni]
    }
}

/// A few legacy keysyms for characters outside Latin-1 that common layouts use.
fn legacy_keysym(cp: u32) -> Option<u32> {
    Some(match cp {
        0x20ac => 0x20ac, // EuroSign
        0x2018 => 0xad0,  // leftsinglequotemark
        0x2019 => 0xad1,
        0x201c => 0xad2,
        0x201d => 0xad3,
        0x2026 => 0xaae, // ellipsis
        0x2013 => 0xaaa, // endash
        0x2014 => 0xaa9, // emdash
        0x1e9e => 0x1001e9e,
        _ => return None,
    })
}

/// The keysym that types `c`: Latin-1 directly, a few control characters as their keys,
/// everything else as a Unicode keysym (0x01000000 + code point).
pub fn char_to_keysym(c: char) -> u32 {
    let cp = c as u32;
    match c {
        '\n' | '\r' => 0xff0d, // Return
        '\t' => 0xff09,        // Tab
        '\u{8}' => 0xff08,     // BackSpace
        '\u{1b}' => 0xff1b,    // Escape
        '\u{7f}' => 0xffff,    // Delete
        _ if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) => cp,
        _ if cp == 0x20ac => 0x20ac,
        _ => 0x0100_0000 + cp,
    }
}

/// The character a keysym types, when it is Latin-1, Unicode or one of the known legacy ones.
pub fn keysym_to_char(keysym: u32) -> Option<char> {
    match keysym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        0x0100_0000..=0x0110_ffff => char::from_u32(keysym - 0x0100_0000),
        0x20ac => Some('€'),
        0xad0 => Some('\u{2018}'),
        0xad1 => Some('\u{2019}'),
        0xad2 => Some('\u{201c}'),
        0xad3 => Some('\u{201d}'),
        0xaae => Some('\u{2026}'),
        0xaaa => Some('\u{2013}'),
        0xaa9 => Some('\u{2014}'),
        _ => None,
    }
}

/// (lower, upper) case of a keysym; equal when it has no case.
pub fn convert_case(keysym: u32) -> (u32, u32) {
    match keysym {
        0x41..=0x5a => (keysym + 0x20, keysym),
        0x61..=0x7a => (keysym, keysym - 0x20),
        0xc0..=0xde if keysym != 0xd7 => (keysym + 0x20, keysym),
        0xe0..=0xfe if keysym != 0xf7 => (keysym, keysym - 0x20),
        0x0100_0000..=0x0110_ffff => {
            let Some(c) = char::from_u32(keysym - 0x0100_0000) else {
                return (keysym, keysym);
            };
            let single = |s: String| {
                let mut it = s.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Some(c as u32 + 0x0100_0000),
                    _ => None,
                }
            };
            let lower = single(c.to_lowercase().collect()).unwrap_or(keysym);
            let upper = single(c.to_uppercase().collect()).unwrap_or(keysym);
            (lower, upper)
        }
        _ => (keysym, keysym),
    }
}

/// Linux evdev code for an XT (set 1) scancode as QEMU's extended key event sends it: plain
/// codes as is, `0xe0`-prefixed ones either as `0xe0XX` or `0x80 | XX`. X keycode = evdev + 8.
pub fn xt_to_evdev(xt: u32) -> Option<u8> {
    let code = match xt {
        0..=0xff => xt,
        0xe000..=0xe07f => 0x80 | (xt & 0x7f),
        _ => return None,
    };
    Some(match code {
        0x01..=0x53 | 0x56..=0x58 => code as u8,
        0x54 => 99,  // SysRq
        0x59 => 117, // KP_Equal
        0x70 => 93,  // Katakana/Hiragana
        0x73 => 89,  // RO
        0x79 => 92,  // Henkan
        0x7b => 94,  // Muhenkan
        0x7d => 124, // Yen
        0x7e => 121, // KP_Comma
        0x90 => 165, // previous song
        0x99 => 163, // next song
        0x9c => 96,  // KP_Enter
        0x9d => 97,  // Control_R
        0xa0 => 113, // mute
        0xa1 => 140, // calculator
        0xa2 => 164, // play/pause
        0xa4 => 166, // stop
        0xae => 114, // volume down
        0xb0 => 115, // volume up
        0xb2 => 172, // home page
        0xb5 => 98,  // KP_Divide
        0xb7 => 99,  // Print
        0xb8 => 100, // Alt_R / AltGr
        0xc6 => 119, // Pause
        0xc7 => 102, // Home
        0xc8 => 103, // Up
        0xc9 => 104, // Prior
        0xcb => 105, // Left
        0xcd => 106, // Right
        0xcf => 107, // End
        0xd0 => 108, // Down
        0xd1 => 109, // Next
        0xd2 => 110, // Insert
        0xd3 => 111, // Delete
        0xdb => 125, // Super_L
        0xdc => 126, // Super_R
        0xdd => 127, // Menu
        0xde => 116, // power
        0xdf => 142, // sleep
        0xe3 => 143, // wake
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small US-like map: keycodes 8.., 4 columns (or 6 with level 3).
    fn us() -> Keymap {
        let per = 6;
        let mut syms = vec![0u32; per * 60];
        let mut set = |k: u8, s: &[u32]| {
            let i = usize::from(k - 8) * per;
            syms[i..i + s.len()].copy_from_slice(s);
        };
        set(9, &[0xff1b, 0, 0xff1b]); // Escape
        set(10, &[0x31, 0x21, 0x31, 0x21]); // 1 !
        set(24, &[0x71, 0x51, 0x71, 0x51, 0x40, 0]); // q Q, AltGr @ (as in de)
        set(36, &[0xff0d, 0, 0xff0d]); // Return
        set(37, &[0xffe3, 0, 0xffe3]); // Control_L
        set(38, &[0x61, 0x41, 0x61, 0x41]); // a A
        set(46, &[0x6c, 0x4c, 0x6c, 0x4c]); // l L
        set(50, &[XK_SHIFT_L, 0, XK_SHIFT_L]);
        set(62, &[0xffe2, 0, 0xffe2]); // Shift_R
        set(66, &[0x62, 0, 0, 0]); // b with implied B
        set(64, &[XK_ISO_LEVEL3_SHIFT, 0, XK_ISO_LEVEL3_SHIFT]);
        // modmap: 2 per modifier: shift(50,62) lock control(37) mod1 mod2 mod3 mod4 mod5(64)
        let modmap = [50, 62, 0, 0, 37, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0];
        Keymap::new(8, per as u8, syms, 2, &modmap)
    }

    fn down(keys: &[u8]) -> [u8; 32] {
        let mut d = [0u8; 32];
        for &k in keys {
            d[usize::from(k / 8)] |= 1 << (k % 8);
        }
        d
    }

    #[test]
    fn plain_and_shifted() {
        let m = us();
        let p = m.plan(0x61, &down(&[]), false).unwrap();
        assert_eq!((p.keycode, p.before.len()), (38, 0));
        let p = m.plan(0x41, &down(&[]), false).unwrap();
        assert_eq!(p.keycode, 38);
        assert_eq!(p.before, vec![(50, true)]);
        assert_eq!(p.after, vec![(50, false)]);
        let p = m.plan(0x21, &down(&[]), false).unwrap();
        assert_eq!((p.keycode, p.before.clone()), (10, vec![(50, true)]));
    }

    #[test]
    fn implied_uppercase_from_missing_column() {
        let m = us();
        assert_eq!(m.lookup(66, Level::new(true, false, false)), 0x42);
        let p = m.plan(0x42, &down(&[]), false).unwrap();
        assert_eq!((p.keycode, p.before.clone()), (66, vec![(50, true)]));
    }

    #[test]
    fn ctrl_l_gets_no_shift_and_escape_never_shift() {
        let m = us();
        let p = m.plan(0x6c, &down(&[37]), false).unwrap();
        assert_eq!(
            p,
            KeyPlan {
                keycode: 46,
                before: vec![],
                after: vec![]
            }
        );
        let p = m.plan(0xff1b, &down(&[]), false).unwrap();
        assert_eq!(
            p,
            KeyPlan {
                keycode: 9,
                before: vec![],
                after: vec![]
            }
        );
        // Shift held: Escape is Escape either way, nothing changes.
        let p = m.plan(0xff1b, &down(&[50]), false).unwrap();
        assert!(p.before.is_empty());
    }

    #[test]
    fn held_shift_released_for_unshifted_symbol() {
        let m = us();
        let p = m.plan(0x31, &down(&[62]), false).unwrap();
        assert_eq!(p.keycode, 10);
        assert_eq!(p.before, vec![(62, false)]);
        assert_eq!(p.after, vec![(62, true)]);
        // Shift held and 'A' wanted: as is.
        let p = m.plan(0x41, &down(&[50]), false).unwrap();
        assert!(p.before.is_empty());
        // Shift+Return stays Shift+Return.
        let p = m.plan(0xff0d, &down(&[50]), false).unwrap();
        assert!(p.before.is_empty());
    }

    #[test]
    fn ctrl_shift_letter_keeps_shift() {
        let m = us();
        let p = m.plan(0x6c, &down(&[37, 50]), false).unwrap();
        assert_eq!(
            p,
            KeyPlan {
                keycode: 46,
                before: vec![],
                after: vec![]
            }
        );
    }

    #[test]
    fn altgr_level3() {
        let m = us();
        let p = m.plan(0x40, &down(&[]), false).unwrap();
        assert_eq!(p.keycode, 24);
        assert_eq!(p.before, vec![(64, true)]);
        assert_eq!(p.after, vec![(64, false)]);
    }

    #[test]
    fn missing_keysym_and_free_keycodes() {
        let m = us();
        assert!(m.plan(0x0100_4f60, &down(&[]), false).is_none());
        let free = m.free_keycodes();
        assert!(free.contains(&11) && !free.contains(&8) && !free.contains(&50));
    }

    #[test]
    fn unicode_and_legacy_forms_match() {
        let mut m = us();
        m.set_keysyms(11, &[0x20ac, 0x20ac]);
        assert_eq!(
            m.plan(char_to_keysym('€'), &down(&[]), false)
                .unwrap()
                .keycode,
            11
        );
        assert_eq!(m.plan(0x0100_20ac, &down(&[]), false).unwrap().keycode, 11);
        assert_eq!(char_to_keysym('é'), 0xe9);
        assert_eq!(char_to_keysym('你'), 0x0100_4f60);
        assert_eq!(char_to_keysym('\n'), 0xff0d);
        assert_eq!(keysym_to_char(0x0101_f600), Some('😀'));
    }

    #[test]
    fn caps_lock_never_inverts_letters() {
        let m = us();
        // Lock on: `a` needs Shift, `A` needs nothing; digits and symbols are unaffected.
        let p = m.plan(0x61, &down(&[]), true).unwrap();
        assert_eq!((p.keycode, p.before.clone()), (38, vec![(50, true)]));
        let p = m.plan(0x41, &down(&[]), true).unwrap();
        assert_eq!((p.keycode, p.before.len()), (38, 0));
        let p = m.plan(0x21, &down(&[]), true).unwrap();
        assert_eq!((p.keycode, p.before.clone()), (10, vec![(50, true)]));
        // A letter with only its small form bound behaves the same.
        let p = m.plan(0x62, &down(&[]), true).unwrap();
        assert_eq!((p.keycode, p.before.clone()), (66, vec![(50, true)]));
        // Shift held with Lock on gives the small letter as is.
        let p = m.plan(0x61, &down(&[50]), true).unwrap();
        assert!(p.before.is_empty());
    }

    #[test]
    fn scancode_is_used_only_when_it_types_the_keysym() {
        let m = us();
        let none = down(&[]);
        // 'a' by the scancode of `a`: agrees. 'A' with no Shift held: the keysym wins.
        assert!(m.scancode_agrees(38, 0x61, &none, false));
        assert!(!m.scancode_agrees(38, 0x41, &none, false));
        assert!(m.scancode_agrees(38, 0x41, &down(&[50]), false));
        // '!' sent with the scancode of `1` and no Shift (keyboard.type, on-screen keyboards).
        assert!(!m.scancode_agrees(10, 0x21, &none, false));
        // Caps Lock on in X but not in the client: 'a' no longer agrees, 'A' does.
        assert!(!m.scancode_agrees(38, 0x61, &none, true));
        assert!(m.scancode_agrees(38, 0x41, &none, true));
        // Keys without character meaning and unknown keysyms keep the scancode.
        assert!(m.scancode_agrees(37, 0xffe3, &down(&[37]), false));
        assert!(m.scancode_agrees(38, 0, &none, false));
        assert!(m.scancode_agrees(11, 0x61, &none, false), "unbound keycode");
        // Unicode keysym for the same character agrees.
        assert!(m.scancode_agrees(38, 0x0100_0061, &none, false));
    }

    #[test]
    fn case_conversion() {
        assert_eq!(convert_case(0x61), (0x61, 0x41));
        assert_eq!(convert_case(0xe9), (0xe9, 0xc9));
        assert_eq!(convert_case(0xf7), (0xf7, 0xf7));
        assert_eq!(convert_case(0x0100_0436), (0x0100_0436, 0x0100_0416));
    }

    #[test]
    fn xt_scancodes() {
        assert_eq!(xt_to_evdev(0x1e), Some(30)); // a
        assert_eq!(xt_to_evdev(0xc8), Some(103)); // Up
        assert_eq!(xt_to_evdev(0xe048), Some(103));
        assert_eq!(xt_to_evdev(0x9d), Some(97));
        assert_eq!(xt_to_evdev(0x7f), None);
        assert_eq!(xt_to_evdev(0x1_0000), None);
    }
}
