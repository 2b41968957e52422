//! The phone fast path: the default region's libphonenumber metadata,
//! compiled once, answers for the numbers most files hold.
//!
//! `rlibphonenumber`'s `parse` + `get_number_type` cost about 14,000
//! instructions a number, most of it in a dozen general-purpose regex
//! searches: the front end that looks for RFC 3966 parameters, extensions
//! and a second number, then the national-prefix and type patterns. For a
//! cell that [`clean_phone`](crate::normalize) has already reduced to ASCII
//! digits (with at most a leading `+`), the front end provably does nothing,
//! and the rest is a handful of the region's own patterns. This module takes
//! those pattern strings from the library's metadata for the default region
//! — exactly the strings the library compiles — builds them into DFAs, and
//! replays the library's parsing steps for the two common shapes: a national
//! number, and `+` followed by the region's country code.
//!
//! It answers only for a *valid* number in a shape it knows; anything else
//! (another country, a number starting with the country code without `+`,
//! an international prefix, a national-prefix transform rule, a country code
//! shared by several regions, an Italian leading zero, an invalid number)
//! goes to the full library path. `tests/differential.rs` checks that both
//! paths agree on every number of a generated corpus.

use std::fmt;
use std::sync::{Arc, Mutex};

use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::start;
use regex_automata::{Anchored, Input, MatchKind};
use rlibphonenumber::interfaces::AsOriginal;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberType, Region};

/// The library's bounds on a national significant number's length.
const MIN_LENGTH_FOR_NSN: usize = 2;
const MAX_LENGTH_FOR_NSN: usize = 17;
/// The longest country calling code.
const MAX_LENGTH_COUNTRY_CODE: usize = 3;

/// The number descriptions `get_number_type` tests, in its order (after the
/// general description, index 0).
const GENERAL: usize = 0;
const PREMIUM_RATE: usize = 1;
const TOLL_FREE: usize = 2;
const SHARED_COST: usize = 3;
const VOIP: usize = 4;
const PERSONAL_NUMBER: usize = 5;
const PAGER: usize = 6;
const UAN: usize = 7;
const VOICEMAIL: usize = 8;
const FIXED_LINE: usize = 9;
const MOBILE: usize = 10;
const DESCS: usize = 11;

/// The types tested between the general description and fixed line, in order.
const SPECIAL: [(usize, PhoneNumberType); 8] = [
    (PREMIUM_RATE, PhoneNumberType::PremiumRate),
    (TOLL_FREE, PhoneNumberType::TollFree),
    (SHARED_COST, PhoneNumberType::SharedCost),
    (VOIP, PhoneNumberType::VoIP),
    (PERSONAL_NUMBER, PhoneNumberType::PersonalNumber),
    (PAGER, PhoneNumberType::Pager),
    (UAN, PhoneNumberType::UAN),
    (VOICEMAIL, PhoneNumberType::VoiceMail),
];

type Dfa = dense::DFA<Vec<u32>>;

/// One number description: its possible lengths and where its pattern sits
/// in the descriptions' DFA.
#[derive(Clone, Copy, Default)]
struct Desc {
    /// The description lists possible lengths (an empty list allows any).
    has_lengths: bool,
    /// Bit `n` set when `n` is one of them.
    lengths: u64,
    /// The pattern's index in [`FastPhone::descs`]; `None` matches nothing.
    pattern: Option<usize>,
}

impl Desc {
    /// `is_number_matching_desc`, with the DFA's verdict for the pattern.
    fn matches(&self, len: usize, matched: u32) -> bool {
        if self.has_lengths && self.lengths & (1 << len) == 0 {
            return false;
        }
        self.pattern.is_some_and(|p| matched & (1 << p) != 0)
    }
}

/// What `test_number_length` says of a length, for the general description.
#[derive(Debug, PartialEq, Eq)]
enum Length {
    Possible,
    LocalOnly,
    TooShort,
    TooLong,
    Invalid,
}

/// The default region's metadata, ready for the fast path.
pub(crate) struct FastPhone {
    /// The region's country calling code, and as text.
    country_code: i32,
    country_code_text: String,
    /// `^(?:international prefix)`, any match: such a number goes the full way.
    idd: Option<Dfa>,
    /// `^(?:national prefix for parsing)`, leftmost-first like the library's `find`.
    national_prefix: Option<Dfa>,
    /// Every description's full-match pattern, all matches reported.
    descs: Dfa,
    desc: [Desc; DESCS],
    /// The general description's lengths as `test_number_length` builds them.
    possible_mask: u64,
    local_mask: u64,
    same_mobile_and_fixed_line: bool,
}

impl fmt::Debug for FastPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastPhone")
            .field("country_code", &self.country_code)
            .finish_non_exhaustive()
    }
}

/// `build_length_mask`: a `-1` (no number of this type) empties the mask.
fn length_mask(lengths: &[i32]) -> u64 {
    let mut mask = 0u64;
    for &l in lengths {
        match u32::try_from(l) {
            Ok(l) if l < 64 => mask |= 1 << l,
            _ => mask = 0,
        }
    }
    mask
}

/// A pattern as `RegexTriplets` stores it (`^(?:…)$`), as the library
/// compiles it: `full` for a full match, else anchored at the start only.
/// `None` when the library would not compile it the usual way.
fn library_pattern(base: Option<&String>, full: bool) -> Result<Option<String>, ()> {
    match base {
        None => Ok(None),
        // The library compiles an empty pattern for these; never met in its metadata.
        Some(base) if base.len() < 6 || !base.starts_with("^(?:") || !base.ends_with(")$") => {
            Err(())
        }
        Some(base) if full => Ok(Some(base.clone())),
        Some(base) => Ok(Some(base[..base.len() - 1].to_string())),
    }
}

/// The DFA of `patterns`. Unicode is off: the fast path only ever feeds
/// ASCII digits, on which `\d` means `[0-9]` either way, and the DFA is a
/// tenth of the size (and of the build time).
fn dfa(patterns: &[String], kind: MatchKind) -> Option<Dfa> {
    dense::Builder::new()
        .syntax(regex_automata::util::syntax::Config::new().unicode(false))
        .configure(dense::Config::new().match_kind(kind))
        .build_many(patterns)
        .ok()
}

impl FastPhone {
    /// The fast path for `region`, built once per process and region (the
    /// DFAs take a few milliseconds), or `None` when the region's metadata has
    /// a shape the fast path does not replay.
    pub(crate) fn for_region(region: Region) -> Option<Arc<FastPhone>> {
        static BUILT: Mutex<Vec<(Region, Option<Arc<FastPhone>>)>> = Mutex::new(Vec::new());
        let Ok(mut built) = BUILT.lock() else {
            return FastPhone::new(region).map(Arc::new);
        };
        if let Some((_, fast)) = built.iter().find(|(r, _)| *r == region) {
            return fast.clone();
        }
        let fast = FastPhone::new(region).map(Arc::new);
        built.push((region, fast.clone()));
        fast
    }

    fn new(region: Region) -> Option<FastPhone> {
        let util = PHONE_NUMBER_UTIL.as_original();
        let meta = util.get_metadata_for_region(region)?;
        if !meta.original.national_prefix_transform_rule().is_empty() {
            return None;
        }
        let country_code = meta.original.country_code();
        let regions: Vec<Region> = PHONE_NUMBER_UTIL
            .get_regions_for_country_calling_code(country_code)?
            .collect();
        // A code shared by several regions is told apart by leading digits:
        // left to the library.
        if regions != [region] {
            return None;
        }
        let country_code_text = country_code.to_string();
        let shorter_is_code = (1..country_code_text.len()).any(|i| {
            country_code_text[..i].parse().is_ok_and(|code: i32| {
                PHONE_NUMBER_UTIL
                    .get_region_for_country_code(code)
                    .is_some()
            })
        });
        if shorter_is_code || country_code_text.len() > MAX_LENGTH_COUNTRY_CODE {
            return None;
        }

        let idd =
            match library_pattern(meta.international_prefix().pattern_base.as_ref(), false).ok()? {
                Some(p) => Some(dfa(&[p], MatchKind::All)?),
                None => None,
            };
        let national_prefix = match library_pattern(
            meta.national_prefix_for_parsing().pattern_base.as_ref(),
            false,
        )
        .ok()?
        {
            Some(p) => Some(dfa(&[p], MatchKind::LeftmostFirst)?),
            None => None,
        };

        let sources = [
            &meta.general_desc,
            &meta.premium_rate,
            &meta.toll_free,
            &meta.shared_cost,
            &meta.voip,
            &meta.personal_number,
            &meta.pager,
            &meta.uan,
            &meta.voicemail,
            &meta.fixed_line,
            &meta.mobile,
        ];
        let mut desc = [Desc::default(); DESCS];
        let mut patterns = Vec::new();
        for (d, source) in desc.iter_mut().zip(sources) {
            let lengths = &source.original.possible_length;
            d.has_lengths = !lengths.is_empty();
            d.lengths = lengths
                .iter()
                .filter_map(|&l| u32::try_from(l).ok().filter(|&l| l < 64))
                .fold(0, |m, l| m | (1 << l));
            if let Some(p) =
                library_pattern(source.national_number_pattern().pattern_base.as_ref(), true)
                    .ok()?
            {
                d.pattern = Some(patterns.len());
                patterns.push(p);
            }
        }
        let descs = dfa(&patterns, MatchKind::All)?;
        let general = &meta.general_desc.original;
        Some(FastPhone {
            country_code,
            country_code_text,
            idd,
            national_prefix,
            descs,
            desc,
            possible_mask: length_mask(&general.possible_length),
            local_mask: length_mask(&general.possible_length_local_only),
            same_mobile_and_fixed_line: meta.original.same_mobile_and_fixed_line_pattern(),
        })
    }

    /// The E.164 form and type of a cleaned cell (ASCII digits, at most a
    /// leading `+`) when it is a valid number the fast path can read; `None`
    /// sends it the full way.
    pub(crate) fn valid(&self, cleaned: &str) -> Option<(String, PhoneNumberType)> {
        let (plus, digits) = match cleaned.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, cleaned),
        };
        if digits.len() < 3
            || digits.len() > MAX_PHONE_TEXT
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let national = if plus {
            // `extract_country_code` takes the shortest prefix naming a
            // code; no shorter prefix of this one names a code, so a number
            // starting with it has this code, and any other has another.
            digits.strip_prefix(self.country_code_text.as_str())?
        } else {
            // No international prefix, and not the country code without `+`
            // (the library then weighs both readings).
            if let Some(idd) = &self.idd
                && any_prefix_match(idd, digits)
            {
                return None;
            }
            if digits.starts_with(&self.country_code_text) {
                return None;
            }
            digits
        };
        if national.len() < MIN_LENGTH_FOR_NSN {
            return None;
        }
        let national = self.strip_national_prefix(national)?;
        if national.len() < MIN_LENGTH_FOR_NSN
            || national.len() > MAX_LENGTH_FOR_NSN
            || national.starts_with('0')
        {
            return None;
        }
        let kind = self.number_type(national);
        if kind == PhoneNumberType::Unknown {
            return None;
        }
        let mut e164 = String::with_capacity(1 + self.country_code_text.len() + national.len());
        e164.push('+');
        e164.push_str(&self.country_code_text);
        e164.push_str(national);
        Some((e164, kind))
    }

    /// `maybe_strip_national_prefix_and_carrier_code` (no transform rule),
    /// then `parse`'s check that what is left has a possible length.
    fn strip_national_prefix<'a>(&self, number: &'a str) -> Option<&'a str> {
        let Some(prefix) = &self.national_prefix else {
            return Some(number);
        };
        let input = Input::new(number).anchored(Anchored::Yes);
        let Some(end) = prefix.try_search_fwd(&input).ok()?.map(|m| m.offset()) else {
            return Some(number);
        };
        let stripped = &number[end..];
        let general = |n: &str| {
            self.desc[GENERAL]
                .pattern
                .is_some_and(|p| self.matches(n) & (1 << p) != 0)
        };
        if general(number) && !general(stripped) {
            return Some(number);
        }
        match self.length(stripped) {
            Length::Possible | Length::TooLong => Some(stripped),
            Length::LocalOnly | Length::TooShort | Length::Invalid => Some(number),
        }
    }

    /// `test_number_length` for the general description.
    fn length(&self, number: &str) -> Length {
        if self.possible_mask == 0 {
            return Length::Invalid;
        }
        let len = number.len() as u32;
        if len >= 64 {
            return Length::TooLong;
        }
        let bit = 1u64 << len;
        if self.local_mask & bit != 0 {
            return Length::LocalOnly;
        }
        let min = self.possible_mask.trailing_zeros();
        let max = 63 - self.possible_mask.leading_zeros();
        if min == len {
            Length::Possible
        } else if min > len {
            Length::TooShort
        } else if max < len {
            Length::TooLong
        } else if self.possible_mask & bit != 0 {
            Length::Possible
        } else {
            Length::Invalid
        }
    }

    /// Which description patterns match the whole of `number`, as bits by
    /// pattern index (the DFA reports every pattern matching at the end).
    fn matches(&self, number: &str) -> u32 {
        let config = start::Config::new().anchored(Anchored::Yes);
        let Ok(mut state) = self.descs.start_state(&config) else {
            return 0;
        };
        for &b in number.as_bytes() {
            state = self.descs.next_state(state, b);
        }
        state = self.descs.next_eoi_state(state);
        let mut bits = 0u32;
        if self.descs.is_match_state(state) {
            for i in 0..self.descs.match_len(state) {
                bits |= 1 << self.descs.match_pattern(state, i).as_usize();
            }
        }
        bits
    }

    /// `get_number_type_helper` on a national significant number.
    fn number_type(&self, national: &str) -> PhoneNumberType {
        let matched = self.matches(national);
        let len = national.len();
        let is = |d: usize| self.desc[d].matches(len, matched);
        if !is(GENERAL) {
            return PhoneNumberType::Unknown;
        }
        if let Some(&(_, kind)) = SPECIAL.iter().find(|(d, _)| is(*d)) {
            return kind;
        }
        if is(FIXED_LINE) {
            return if self.same_mobile_and_fixed_line || is(MOBILE) {
                PhoneNumberType::FixedLineOrMobile
            } else {
                PhoneNumberType::FixedLine
            };
        }
        if !self.same_mobile_and_fixed_line && is(MOBILE) {
            return PhoneNumberType::Mobile;
        }
        PhoneNumberType::Unknown
    }
}

/// The longest digit string the fast path reads (a country code and the
/// longest national number).
const MAX_PHONE_TEXT: usize = MAX_LENGTH_COUNTRY_CODE + MAX_LENGTH_FOR_NSN;

/// Whether `dfa` (built with every match reported) matches some prefix of
/// `text`, the empty one included.
fn any_prefix_match(dfa: &Dfa, text: &str) -> bool {
    let input = Input::new(text).anchored(Anchored::Yes).earliest(true);
    !matches!(dfa.try_search_fwd(&input), Ok(None))
}
