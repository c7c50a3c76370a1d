//! Instruction-set levels of the kernels, chosen at run time, and the environment variable
//! that caps them so one machine can run (and test) every level below its best.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that caps the level: `avx2`, `avx512`, `avx512-bf16`, or `none`
/// (no pet kernel: every product and fused operation is composed from Burn's). Unset, the best
/// level this CPU runs is used.
pub const LEVEL_VARIABLE: &str = "PET_CPU_LEVEL";

/// An instruction-set level of the matrix-product kernels, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// x86-64 with AVX2 and FMA (x86-64-v3): `f32` products in 8-lane vectors, 6 x 16 tiles;
    /// bf16 operands are rounded to bf16 and multiplied in `f32` (the same numerics, no
    /// speed-up).
    Avx2,
    /// x86-64-v4 (AVX-512 F, BW, CD, DQ, VL) without BF16: `f32` products in 16-lane vectors;
    /// bf16 operands as on [`Level::Avx2`].
    Avx512,
    /// AVX-512 with AVX512-BF16: `f32` FMA products and `vdpbf16ps` for bf16 operands.
    Avx512Bf16,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Avx2, Level::Avx512, Level::Avx512Bf16];

    /// The level's name, as [`LEVEL_VARIABLE`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512-bf16",
        }
    }

    /// Whether this CPU runs the level's kernels.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Level::Avx2 => pulp::x86::V3::try_new().is_some(),
                Level::Avx512 => pulp::x86::V4::try_new().is_some(),
                Level::Avx512Bf16 => crate::kernel::available(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether bf16 operands run on bf16 instructions (else they are rounded and multiplied in
    /// `f32`).
    pub fn has_bf16(self) -> bool {
        self == Level::Avx512Bf16
    }

    /// The levels this CPU runs, lowest first.
    pub fn available() -> Vec<Level> {
        Level::ALL.into_iter().filter(|level| level.supported()).collect()
    }

    /// The best level this CPU runs, at most `cap` when one is given.
    pub fn best(cap: Cap) -> Option<Level> {
        let limit = match cap {
            Cap::None => return None,
            Cap::Best => Level::Avx512Bf16,
            Cap::At(level) => level,
        };
        Level::available().into_iter().rfind(|&level| level <= limit)
    }

    /// The level the kernels run at in this process: [`Level::best`] under [`Cap::selected`].
    pub fn selected() -> Option<Level> {
        static SELECTED: OnceLock<Option<Level>> = OnceLock::new();
        *SELECTED.get_or_init(|| Level::best(Cap::selected()))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cap on the level, as [`LEVEL_VARIABLE`] sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// No cap: the best level the CPU runs.
    Best,
    /// At most this level.
    At(Level),
    /// No pet kernel at all.
    None,
}

/// A value [`LEVEL_VARIABLE`] cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownLevel(pub String);

impl fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{LEVEL_VARIABLE}={:?} is not a level: use none, avx2, avx512 or avx512-bf16",
            self.0
        )
    }
}

impl std::error::Error for UnknownLevel {}

impl FromStr for Cap {
    type Err = UnknownLevel;

    fn from_str(text: &str) -> Result<Self, UnknownLevel> {
        let name = text.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Ok(Cap::Best);
        }
        if name == "none" {
            return Ok(Cap::None);
        }
        Level::ALL
            .into_iter()
            .find(|level| level.name() == name)
            .map(Cap::At)
            .ok_or_else(|| UnknownLevel(text.to_string()))
    }
}

impl Cap {
    /// The cap of this process, read once from [`LEVEL_VARIABLE`]. A value the variable cannot
    /// hold counts as unset here; binaries check it first with [`Cap::from_env`] to report it.
    pub fn selected() -> Cap {
        static SELECTED: OnceLock<Cap> = OnceLock::new();
        *SELECTED.get_or_init(|| Cap::from_env().unwrap_or(Cap::Best))
    }

    /// The cap [`LEVEL_VARIABLE`] sets ([`Cap::Best`] when it is unset).
    ///
    /// # Errors
    /// When the variable holds something else than a level's name or `none`.
    pub fn from_env() -> Result<Cap, UnknownLevel> {
        match std::env::var(LEVEL_VARIABLE) {
            Ok(text) => text.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Cap::Best),
            Err(std::env::VarError::NotUnicode(text)) => {
                Err(UnknownLevel(text.to_string_lossy().into_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse_from_names() {
        assert_eq!("avx2".parse(), Ok(Cap::At(Level::Avx2)));
        assert_eq!(" AVX512 ".parse(), Ok(Cap::At(Level::Avx512)));
        assert_eq!("avx512-bf16".parse(), Ok(Cap::At(Level::Avx512Bf16)));
        assert_eq!("none".parse(), Ok(Cap::None));
        assert_eq!("".parse(), Ok(Cap::Best));
        let err = "sse2".parse::<Cap>().expect_err("no such level");
        assert!(err.to_string().contains("\"sse2\" is not a level"), "{err}");
    }

    #[test]
    fn the_best_level_stays_under_the_cap_and_on_this_cpu() {
        assert_eq!(Level::best(Cap::None), None);
        let available = Level::available();
        assert_eq!(Level::best(Cap::Best), available.last().copied());
        for cap in Level::ALL {
            let best = Level::best(Cap::At(cap));
            assert!(best.is_none_or(|level| level <= cap && level.supported()), "{best:?}");
        }
        // Levels nest: a CPU that runs one runs those below it.
        let expected: Vec<Level> = Level::ALL.into_iter().take(available.len()).collect();
        assert_eq!(available, expected);
    }
}
