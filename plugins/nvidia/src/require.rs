//! `NVIDIA_REQUIRE_*`: what an image requires of the host's driver and GPUs,
//! in the grammar of libnvidia-container (`nvidia-container-cli configure
//! --require`, `src/cli/dsl.c`) and from the variables NVIDIA's toolkit
//! hands it (`internal/config/image/cuda_image.go`).
//!
//! A variable's value is alternatives separated by spaces, one of which must
//! hold; an alternative is constraints joined by commas, all of which must
//! hold; a constraint is `<kind><operator><value>`. Every variable must hold.
//! The driver's version is known; the CUDA version it supports comes from
//! NVIDIA's table (`cuda_table`); a GPU's brand and architecture only NVML
//! knows, so they are unknown here, and the logic is three-valued: an
//! unknown constraint decides only when nothing known does.

mod cuda_table;

use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;

pub use cuda_table::Cuda;

pub const PREFIX: &str = "NVIDIA_REQUIRE_";
/// Jetson's variables (`NVIDIA_REQUIRE_JETPACK…`), which NVIDIA's toolkit
/// does not treat as requirements.
const JETPACK: &str = "NVIDIA_REQUIRE_JETPACK";
pub const DISABLE: &str = "NVIDIA_DISABLE_REQUIRE";
const CUDA_VERSION: &str = "CUDA_VERSION";

/// The setting `unverifiable-requirements`: what becomes of a container
/// whose requirements hang on what hookhost cannot check (a GPU's brand or
/// architecture, which only NVML knows; a CUDA beyond NVIDIA's table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unverifiable {
    /// It fails, naming the requirement.
    #[default]
    Refuse,
    /// It starts, with a warning in the log.
    Ignore,
}

/// `NVIDIA_DISABLE_REQUIRE` as NVIDIA's toolkit reads it (Go's
/// `strconv.ParseBool`): `Some(true)` turns the checks off, `None` is no
/// boolean (and leaves them on, as there).
pub fn parse_disable(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A version of dotted numbers, compared number by number with trailing
/// zeros ignored (`12.4` = `12.4.0` < `12.4.1`), as libnvidia-container
/// compares them, and shown as written (`590.44.01`).
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    numbers: Vec<u64>,
}

impl Version {
    fn new(numbers: Vec<u64>) -> Version {
        assert!(!numbers.is_empty());
        let text: Vec<String> = numbers.iter().map(u64::to_string).collect();
        Version {
            text: text.join("."),
            numbers,
        }
    }

    /// Decimal numbers separated by single dots.
    pub fn parse(text: &str) -> Option<Version> {
        text.split('.')
            .map(|n| {
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                n.parse().ok()
            })
            .collect::<Option<Vec<u64>>>()
            .map(|numbers| Version {
                text: text.to_string(),
                numbers,
            })
    }

    /// The first number: a driver version's branch.
    pub fn branch(&self) -> u64 {
        self.numbers[0]
    }

    fn significant(&self) -> &[u64] {
        let end = self
            .numbers
            .iter()
            .rposition(|&n| n != 0)
            .map_or(0, |i| i + 1);
        &self.numbers[..end]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.significant().cmp(other.significant())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a constraint is about, and the version it names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Cuda(Version),
    Driver(Version),
    /// A GPU's compute capability.
    Arch(Version),
    /// A GPU's brand. The name is never compared: only NVML knows a GPU's
    /// brand.
    Brand,
}

/// libnvidia-container's names, matched in any case.
const KINDS: [&str; 4] = ["cuda", "driver", "arch", "brand"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Exactly libnvidia-container's operators: `==` is not one.
const OPERATORS: [(&str, Op); 6] = [
    ("=", Op::Eq),
    ("!=", Op::Ne),
    ("<", Op::Lt),
    ("<=", Op::Le),
    (">", Op::Gt),
    (">=", Op::Ge),
];
const OPERATOR_LIST: &str = "=, !=, <, <=, >, >=";

impl Op {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
        }
    }
}

/// What a constraint comes to on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Met,
    /// Not met, and why.
    Unmet(String),
    /// Only NVML could tell, and why.
    Unknown(String),
}

impl Outcome {
    fn known(met: bool, why: impl FnOnce() -> String) -> Outcome {
        if met {
            Outcome::Met
        } else {
            Outcome::Unmet(why())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Constraint {
    /// As written, for messages.
    text: String,
    op: Op,
    target: Target,
}

impl Constraint {
    fn parse(text: &str) -> Result<Constraint, String> {
        // Errors show a tab or a newline as `\t`, `\n`: they separate
        // nothing here, as in NVIDIA's parsers.
        let shown = text.escape_debug();
        let Some(kind_end) = text.find(['<', '>', '=', '!']) else {
            return Err(format!(
                "`{shown}` is no constraint: it needs an operator ({OPERATOR_LIST})"
            ));
        };
        let (name, rest) = text.split_at(kind_end);
        if name.is_empty() {
            return Err(format!(
                "`{shown}` names no kind (cuda, driver, arch or brand)"
            ));
        }
        let kind = KINDS
            .into_iter()
            .find(|known| known.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "`{shown}`: unknown kind `{}` (known: {})",
                    name.escape_debug(),
                    KINDS.join(", ")
                )
            })?;
        let op_end = rest
            .find(|c| !matches!(c, '<' | '>' | '=' | '!'))
            .unwrap_or(rest.len());
        let (op_text, value) = rest.split_at(op_end);
        let op = OPERATORS
            .iter()
            .find(|(known, _)| *known == op_text)
            .map(|&(_, op)| op)
            .ok_or_else(|| {
                format!("`{shown}`: `{op_text}` is not an operator (known: {OPERATOR_LIST})")
            })?;
        if value.is_empty() {
            return Err(format!("`{shown}` has no value after `{op_text}`"));
        }
        if kind == "brand" {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(format!("`{shown}`: a brand is compared with = or != only"));
            }
            return Ok(Constraint {
                text: text.to_string(),
                op,
                target: Target::Brand,
            });
        }
        let version = Version::parse(value).ok_or_else(|| {
            format!(
                "`{shown}`: `{}` is not a version (numbers separated by dots)",
                value.escape_debug()
            )
        })?;
        let target = match kind {
            "cuda" => Target::Cuda(version),
            "driver" => Target::Driver(version),
            _ => Target::Arch(version),
        };
        Ok(Constraint {
            text: text.to_string(),
            op,
            target,
        })
    }

    fn evaluate(&self, host: &Host) -> Outcome {
        let what = match &self.target {
            Target::Driver(wanted) => {
                return Outcome::known(self.op.holds(host.driver.cmp(wanted)), || {
                    format!("the driver is {}", host.driver)
                })
            }
            Target::Cuda(wanted) => return self.evaluate_cuda(host, wanted),
            // As in libnvidia-container: a constraint on the GPUs holds
            // when the container gets none.
            Target::Arch(_) | Target::Brand if !host.gpus => return Outcome::Met,
            Target::Arch(_) => "architecture (compute capability)",
            Target::Brand => "brand",
        };
        Outcome::Unknown(format!(
            "{} cannot be checked without NVML (/proc/driver/nvidia does not give a GPU's {what})",
            self.text
        ))
    }

    /// What the host's CUDA version, as far as the table tells it, says of
    /// `cuda<op>wanted`: known when every version the table allows agrees.
    fn evaluate_cuda(&self, host: &Host, wanted: &Version) -> Outcome {
        let driver = &host.driver;
        let (decided, why) = match &host.cuda {
            Cuda::Exactly(cuda) => (
                Some(self.op.holds(cuda.cmp(wanted))),
                format!("the driver {driver} supports CUDA {cuda}"),
            ),
            // Some version >= newest.
            Cuda::AtLeast(newest) => {
                let decided = match self.op {
                    Op::Ge => (newest >= wanted).then_some(true),
                    Op::Gt | Op::Ne => (newest > wanted).then_some(true),
                    Op::Lt => (newest >= wanted).then_some(false),
                    Op::Le | Op::Eq => (newest > wanted).then_some(false),
                };
                let why = format!(
                    "the driver {driver} supports CUDA {newest} or later: its branch is newer than \
                     those of NVIDIA's table that hookhost knows"
                );
                (decided, why)
            }
            // Some version < oldest.
            Cuda::Below(oldest) => {
                let below = wanted >= oldest;
                let decided = match self.op {
                    Op::Ge | Op::Gt | Op::Eq => below.then_some(false),
                    Op::Lt | Op::Le | Op::Ne => below.then_some(true),
                };
                let why = format!(
                    "the driver {driver} is older than any in NVIDIA's table (CUDA {oldest} and later)"
                );
                (decided, why)
            }
        };
        match decided {
            Some(met) => Outcome::known(met, || why),
            None => Outcome::Unknown(format!("{} cannot be told: {why}", self.text)),
        }
    }
}

/// What the requirements are checked against.
#[derive(Debug)]
pub struct Host {
    driver: Version,
    cuda: Cuda,
    /// Whether the container gets a GPU.
    gpus: bool,
}

impl Host {
    /// `driver`: the version of `/proc/driver/nvidia/version`.
    pub fn new(driver: &str, gpus: bool) -> Result<Host, String> {
        let driver = Version::parse(driver)
            .ok_or_else(|| format!("the driver version `{driver}` is not dotted numbers"))?;
        Ok(Host {
            cuda: Cuda::of_driver(&driver),
            driver,
            gpus,
        })
    }
}

/// One variable's requirement.
#[derive(Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Where it comes from, for messages: the variable's name, or a legacy
    /// image's `CUDA_VERSION`.
    source: String,
    alternatives: Vec<Vec<Constraint>>,
}

impl Requirement {
    /// `None` for a value without constraints (empty, blanks, commas), as
    /// NVIDIA's toolkit skips those. Like NVIDIA's, only spaces separate
    /// alternatives.
    fn parse(source: &str, value: &str) -> Result<Option<Requirement>, String> {
        let mut alternatives = Vec::new();
        for alternative in value.split(' ') {
            let constraints = alternative
                .split(',')
                .filter(|c| !c.is_empty())
                .map(Constraint::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{source}: {e}"))?;
            if !constraints.is_empty() {
                alternatives.push(constraints);
            }
        }
        Ok((!alternatives.is_empty()).then(|| Requirement {
            source: source.to_string(),
            alternatives,
        }))
    }

    fn evaluate(&self, host: &Host) -> Outcome {
        let outcomes: Vec<Outcome> = self
            .alternatives
            .iter()
            .map(|alternative| all_of(alternative, host))
            .collect();
        if outcomes.contains(&Outcome::Met) {
            return Outcome::Met;
        }
        let unknown = outcomes.iter().any(|o| matches!(o, Outcome::Unknown(_)));
        let why = |outcome: &Outcome| match outcome {
            Outcome::Unmet(why) | Outcome::Unknown(why) => why.clone(),
            Outcome::Met => unreachable!("no alternative is met"),
        };
        let message = if let [only] = &outcomes[..] {
            let text = show(&self.alternatives[0]);
            match unknown {
                false => format!("{text} is not met: {}", why(only)),
                true => format!("cannot tell whether {text} is met: {}", why(only)),
            }
        } else {
            let each: Vec<String> = self
                .alternatives
                .iter()
                .zip(&outcomes)
                .map(|(alternative, outcome)| format!("{}: {}", show(alternative), why(outcome)))
                .collect();
            let text: Vec<String> = self.alternatives.iter().map(|a| show(a)).collect();
            match unknown {
                false => format!(
                    "{} is not met: no alternative holds ({})",
                    text.join(" "),
                    each.join("; ")
                ),
                true => format!(
                    "cannot tell whether {} is met ({})",
                    text.join(" "),
                    each.join("; ")
                ),
            }
        };
        match unknown {
            false => Outcome::Unmet(message),
            true => Outcome::Unknown(message),
        }
    }
}

fn show(alternative: &[Constraint]) -> String {
    let texts: Vec<&str> = alternative.iter().map(|c| c.text.as_str()).collect();
    texts.join(",")
}

/// An alternative: an unmet constraint decides, an unknown one only when
/// none is unmet.
fn all_of(alternative: &[Constraint], host: &Host) -> Outcome {
    let outcomes: Vec<Outcome> = alternative.iter().map(|c| c.evaluate(host)).collect();
    let several = alternative.len() > 1;
    let unmet = alternative
        .iter()
        .zip(&outcomes)
        .find_map(|(c, o)| match o {
            Outcome::Unmet(why) if several => Some(format!("{} fails, {why}", c.text)),
            Outcome::Unmet(why) => Some(why.clone()),
            _ => None,
        });
    if let Some(why) = unmet {
        return Outcome::Unmet(why);
    }
    let unknown: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Unknown(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    match unknown[..] {
        [] => Outcome::Met,
        _ => Outcome::Unknown(unknown.join("; ")),
    }
}

/// The requirements of a container's environment (`process.env` in spec
/// order): each `NVIDIA_REQUIRE_*` but Jetson's, a variable set twice with
/// its first value (what `getenv` gives); and for a legacy CUDA image (see
/// `select::is_legacy_image`) its `CUDA_VERSION`, which requires
/// `cuda>=<major.minor>`. `NVIDIA_DISABLE_REQUIRE` is the caller's.
pub fn from_env(
    env: &[(String, String)],
    legacy_cuda_version: Option<&str>,
) -> Result<Vec<Requirement>, String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut requirements = Vec::new();
    for (name, value) in env {
        if !name.starts_with(PREFIX) || name.starts_with(JETPACK) || seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        requirements.extend(Requirement::parse(name, value)?);
    }
    if let Some(version) = legacy_cuda_version {
        let source = format!("{CUDA_VERSION}={version} (a legacy CUDA image)");
        let major_minor = legacy_major_minor(version).ok_or_else(|| {
            format!(
                "{source}: `{version}` is not a version (major[.minor[.patch]]): a legacy CUDA \
                 image requires cuda>= its major.minor"
            )
        })?;
        requirements.extend(Requirement::parse(
            &source,
            &format!("cuda>={major_minor}"),
        )?);
    }
    Ok(requirements)
}

/// `M.m` of a legacy image's `CUDA_VERSION`, read as NVIDIA's toolkit reads
/// it: a semantic version with an optional `v`, the minor and patch
/// optional (`12` is `12.0`), a pre-release or build suffix only after the
/// patch, numbers without leading zeros that fit 32 bits.
fn legacy_major_minor(version: &str) -> Option<String> {
    let version = version.strip_prefix('v').unwrap_or(version);
    let (core, suffix) = match version.find(['-', '+']) {
        Some(at) => version.split_at(at),
        None => (version, ""),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() > 3 || (!suffix.is_empty() && numbers.len() != 3) {
        return None;
    }
    let suffix_ok = suffix.is_empty()
        || suffix[1..].split(['.', '+']).all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let number_ok = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (*n == "0" || !n.starts_with('0'))
            && n.parse::<u32>().is_ok()
    };
    if !suffix_ok || !numbers.iter().all(number_ok) {
        return None;
    }
    Some(format!("{}.{}", numbers[0], numbers.get(1).unwrap_or(&"0")))
}

/// Checks every requirement: `Err` names the first unmet one (or, with
/// `Refuse`, the first that hangs on what cannot be checked); `Ok` has the
/// warnings for those that `Ignore` lets pass.
pub fn check(
    requirements: &[Requirement],
    host: &Host,
    unverifiable: Unverifiable,
) -> Result<Vec<String>, String> {
    let outcomes: Vec<(&Requirement, Outcome)> =
        requirements.iter().map(|r| (r, r.evaluate(host))).collect();
    if let Some((r, Outcome::Unmet(why))) = outcomes
        .iter()
        .find(|(_, o)| matches!(o, Outcome::Unmet(_)))
    {
        return Err(format!("{}: {why}", r.source));
    }
    let mut warnings = Vec::new();
    for (r, outcome) in &outcomes {
        let Outcome::Unknown(why) = outcome else {
            continue;
        };
        match unverifiable {
            Unverifiable::Refuse => {
                return Err(format!(
                    "{}: {why}; the setting `unverifiable-requirements` is `refuse` (with \
                     `ignore` such a container starts, with a warning)",
                    r.source
                ))
            }
            Unverifiable::Ignore => warnings.push(format!(
                "{}: {why}; not checked, as the setting `unverifiable-requirements` is `ignore`",
                r.source
            )),
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The requirements of `vars` on a host with driver `driver`, with and
    /// without GPUs in the container.
    fn check_on(
        driver: &str,
        gpus: bool,
        vars: &[(&str, &str)],
        unverifiable: Unverifiable,
    ) -> Result<Vec<String>, String> {
        let requirements = from_env(&env(vars), None)?;
        check(&requirements, &Host::new(driver, gpus)?, unverifiable)
    }

    /// On the fixtures' host: driver 550.54.14 (CUDA 12.4), GPUs given.
    fn on_550(value: &str) -> Result<Vec<String>, String> {
        check_on(
            "550.54.14",
            true,
            &[("NVIDIA_REQUIRE_CUDA", value)],
            Unverifiable::Refuse,
        )
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn versions_compare_number_by_number_ignoring_trailing_zeros() {
        assert_eq!(v("12.4"), v("12.4.0"));
        assert_eq!(v("12"), v("12.0.0"));
        assert!(v("12.4") < v("12.4.1"));
        assert!(v("12.10") > v("12.9"));
        assert!(v("550.54.14") < v("550.54.15"));
        assert!(v("550.100") > v("550.54.15"));
        assert_eq!(v("12.4").to_string(), "12.4");
        assert_eq!(v("590.44.01").to_string(), "590.44.01");
        for bad in [
            "",
            "12.",
            ".4",
            "12..4",
            "12.x",
            "-1",
            "1 2",
            "99999999999999999999",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_grammar_of_nvidia_cuda_images() {
        let value = "cuda>=12.4 brand=tesla,driver>=470,driver<471 \
                     brand=unknown,driver>=470,driver<471 brand=nvidia,driver>=535,driver<536";
        let requirement = Requirement::parse("NVIDIA_REQUIRE_CUDA", value)
            .unwrap()
            .unwrap();
        let shape: Vec<Vec<&str>> = requirement
            .alternatives
            .iter()
            .map(|a| a.iter().map(|c| c.text.as_str()).collect())
            .collect();
        assert_eq!(
            shape,
            [
                vec!["cuda>=12.4"],
                vec!["brand=tesla", "driver>=470", "driver<471"],
                vec!["brand=unknown", "driver>=470", "driver<471"],
                vec!["brand=nvidia", "driver>=535", "driver<536"],
            ]
        );
        let first = &requirement.alternatives[0][0];
        assert_eq!(
            (first.op, &first.target),
            (Op::Ge, &Target::Cuda(v("12.4")))
        );
        // Every operator, kinds in any case, blanks and commas skipped.
        let ops = Requirement::parse(
            "X",
            "  CUDA=12,Driver!=1,, arch<8.0,arch<=9  driver>1,cuda>=2 ",
        )
        .unwrap()
        .unwrap();
        let ops: Vec<Vec<Op>> = ops
            .alternatives
            .iter()
            .map(|a| a.iter().map(|c| c.op).collect())
            .collect();
        assert_eq!(
            ops,
            [
                vec![Op::Eq, Op::Ne],
                vec![Op::Lt, Op::Le],
                vec![Op::Gt, Op::Ge]
            ]
        );
    }

    #[test]
    fn a_value_without_constraints_requires_nothing() {
        for value in ["", " ", "   ", ",", " , ,, "] {
            assert_eq!(Requirement::parse("X", value), Ok(None), "{value:?}");
        }
        assert_eq!(on_550(""), Ok(vec![]));
    }

    #[test]
    fn a_malformed_constraint_fails_naming_the_variable() {
        let cases = [
            ("cuda=>12.4", "NVIDIA_REQUIRE_CUDA: `cuda=>12.4`: `=>` is not an operator (known: =, !=, <, <=, >, >=)"),
            ("cuda==12.4", "NVIDIA_REQUIRE_CUDA: `cuda==12.4`: `==` is not an operator (known: =, !=, <, <=, >, >=)"),
            ("cuda>=", "NVIDIA_REQUIRE_CUDA: `cuda>=` has no value after `>=`"),
            ("cuda>=12.x", "NVIDIA_REQUIRE_CUDA: `cuda>=12.x`: `12.x` is not a version (numbers separated by dots)"),
            ("cuda>=12..4", "NVIDIA_REQUIRE_CUDA: `cuda>=12..4`: `12..4` is not a version (numbers separated by dots)"),
            ("cuda12.4", "NVIDIA_REQUIRE_CUDA: `cuda12.4` is no constraint: it needs an operator (=, !=, <, <=, >, >=)"),
            (">=12.4", "NVIDIA_REQUIRE_CUDA: `>=12.4` names no kind (cuda, driver, arch or brand)"),
            ("gpu>=1", "NVIDIA_REQUIRE_CUDA: `gpu>=1`: unknown kind `gpu` (known: cuda, driver, arch, brand)"),
            ("brand>=tesla", "NVIDIA_REQUIRE_CUDA: `brand>=tesla`: a brand is compared with = or != only"),
            // A tab separates nothing, as for NVIDIA.
            ("cuda>=12.4\tbrand=tesla", "NVIDIA_REQUIRE_CUDA: `cuda>=12.4\\tbrand=tesla`: `12.4\\tbrand=tesla` is not a version"),
            ("cuda>=12.4\n", "NVIDIA_REQUIRE_CUDA: `cuda>=12.4\\n`: `12.4\\n` is not a version"),
            // Blanks around an operator split the constraint.
            ("cuda >= 12.4", "NVIDIA_REQUIRE_CUDA: `cuda` is no constraint: it needs an operator"),
        ];
        for (value, error) in cases {
            let got = on_550(value).unwrap_err();
            assert!(got.starts_with(error), "{value:?}: {got}");
        }
        // In any alternative, even after one that holds.
        assert!(on_550("cuda>=12.0 cuda>>1").is_err());
    }

    #[test]
    fn cuda_is_checked_against_the_table() {
        for met in [
            "cuda>=12.4",
            "cuda>=12",
            "cuda=12.4.0",
            "cuda<12.5",
            "cuda>11.8",
            "cuda!=12.3",
        ] {
            assert_eq!(on_550(met), Ok(vec![]), "{met}");
        }
        assert_eq!(
            on_550("cuda>=12.6"),
            Err("NVIDIA_REQUIRE_CUDA: cuda>=12.6 is not met: the driver 550.54.14 supports CUDA 12.4"
                .into())
        );
        assert_eq!(
            on_550("cuda>=12.4.1"),
            Err(
                "NVIDIA_REQUIRE_CUDA: cuda>=12.4.1 is not met: the driver 550.54.14 supports \
                 CUDA 12.4"
                    .into()
            )
        );
    }

    #[test]
    fn driver_ranges() {
        assert_eq!(on_550("driver>=550,driver<551"), Ok(vec![]));
        assert_eq!(on_550("driver=550.54.14"), Ok(vec![]));
        assert_eq!(
            on_550("driver>=535,driver<536"),
            Err(
                "NVIDIA_REQUIRE_CUDA: driver>=535,driver<536 is not met: driver<536 fails, the \
                 driver is 550.54.14"
                    .into()
            )
        );
    }

    #[test]
    fn one_alternative_that_holds_is_enough() {
        assert_eq!(on_550("cuda>=12.6 driver>=550,driver<551"), Ok(vec![]));
        assert_eq!(
            on_550("cuda>=12.6 driver>=535,driver<536"),
            Err(
                "NVIDIA_REQUIRE_CUDA: cuda>=12.6 driver>=535,driver<536 is not met: no \
                 alternative holds (cuda>=12.6: the driver 550.54.14 supports CUDA 12.4; \
                 driver>=535,driver<536: driver<536 fails, the driver is 550.54.14)"
                    .into()
            )
        );
    }

    #[test]
    fn brand_and_arch_decide_only_when_nothing_known_does() {
        // A met alternative, or an unmet constraint beside them, decides.
        assert_eq!(
            on_550("cuda>=12.4 brand=tesla,driver>=470,driver<471"),
            Ok(vec![])
        );
        assert_eq!(on_550("brand=tesla cuda>=12.0"), Ok(vec![]));
        assert_eq!(
            on_550("brand=tesla,driver<500"),
            Err(
                "NVIDIA_REQUIRE_CUDA: brand=tesla,driver<500 is not met: driver<500 fails, the \
                 driver is 550.54.14"
                    .into()
            )
        );
        let unknown = "cuda>=12.6 brand=tesla,driver>=550,driver<551";
        assert_eq!(
            on_550(unknown),
            Err("NVIDIA_REQUIRE_CUDA: cannot tell whether cuda>=12.6 \
                 brand=tesla,driver>=550,driver<551 is met (cuda>=12.6: the driver 550.54.14 \
                 supports CUDA 12.4; brand=tesla,driver>=550,driver<551: brand=tesla cannot be \
                 checked without NVML (/proc/driver/nvidia does not give a GPU's brand)); the \
                 setting `unverifiable-requirements` is `refuse` (with `ignore` such a \
                 container starts, with a warning)"
                .into())
        );
        let vars = [("NVIDIA_REQUIRE_CUDA", unknown)];
        let warnings = check_on("550.54.14", true, &vars, Unverifiable::Ignore).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("NVIDIA_REQUIRE_CUDA: cannot tell whether cuda>=12.6"),
            "{warnings:?}"
        );
        assert!(
            warnings[0]
                .ends_with("not checked, as the setting `unverifiable-requirements` is `ignore`"),
            "{warnings:?}"
        );
        let arch = check_on(
            "550.54.14",
            true,
            &[("NVIDIA_REQUIRE_ARCH", "arch>=8.0")],
            Unverifiable::Refuse,
        )
        .unwrap_err();
        assert!(
            arch.starts_with(
                "NVIDIA_REQUIRE_ARCH: cannot tell whether arch>=8.0 is met: arch>=8.0 cannot be \
                 checked without NVML (/proc/driver/nvidia does not give a GPU's architecture \
                 (compute capability))"
            ),
            "{arch}"
        );
    }

    #[test]
    fn without_gpus_brand_and_arch_hold_as_in_libnvidia_container() {
        let vars = [("NVIDIA_REQUIRE_X", "brand=tesla,arch>=9.0")];
        assert_eq!(
            check_on("550.54.14", false, &vars, Unverifiable::Refuse),
            Ok(vec![])
        );
        let vars = [("NVIDIA_REQUIRE_X", "brand!=tesla,driver>=560")];
        assert!(check_on("550.54.14", false, &vars, Unverifiable::Refuse).is_err());
    }

    #[test]
    fn every_variable_must_hold_and_an_unmet_one_is_named_first() {
        let vars = [
            ("NVIDIA_REQUIRE_BRAND", "brand=tesla"),
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.0"),
            ("NVIDIA_REQUIRE_DRIVER", "driver>=555"),
        ];
        let err = check_on("550.54.14", true, &vars, Unverifiable::Refuse).unwrap_err();
        assert_eq!(
            err,
            "NVIDIA_REQUIRE_DRIVER: driver>=555 is not met: the driver is 550.54.14"
        );
        let err = check_on("550.54.14", true, &vars, Unverifiable::Ignore).unwrap_err();
        assert!(err.starts_with("NVIDIA_REQUIRE_DRIVER:"), "{err}");
        let met = [
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.0"),
            ("NVIDIA_REQUIRE_DRIVER", "driver>=550"),
        ];
        assert_eq!(
            check_on("550.54.14", true, &met, Unverifiable::Refuse),
            Ok(vec![])
        );
    }

    #[test]
    fn a_driver_newer_than_the_table_supports_at_least_its_newest_cuda() {
        let on_590 = |value| {
            check_on(
                "590.44.01",
                true,
                &[("NVIDIA_REQUIRE_CUDA", value)],
                Unverifiable::Refuse,
            )
        };
        for met in ["cuda>=13.0", "cuda>=12.4", "cuda>12.9", "cuda!=12.8"] {
            assert_eq!(on_590(met), Ok(vec![]), "{met}");
        }
        for unmet in ["cuda<13.0", "cuda<=12.9", "cuda=12.8"] {
            let err = on_590(unmet).unwrap_err();
            assert!(
                err.contains("is not met: the driver 590.44.01 supports CUDA 13.0 or later"),
                "{unmet}: {err}"
            );
        }
        for unknown in [
            "cuda>=13.1",
            "cuda<14",
            "cuda=13.0",
            "cuda!=13.2",
            "cuda>13.0",
        ] {
            let err = on_590(unknown).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "NVIDIA_REQUIRE_CUDA: cannot tell whether {unknown} is met: {unknown} \
                     cannot be told: the driver 590.44.01 supports CUDA 13.0 or later"
                )),
                "{unknown}: {err}"
            );
        }
    }

    #[test]
    fn a_driver_older_than_the_table_supports_less_than_its_oldest_cuda() {
        let on_340 = |value| {
            check_on(
                "340.108",
                true,
                &[("NVIDIA_REQUIRE_CUDA", value)],
                Unverifiable::Refuse,
            )
        };
        assert_eq!(on_340("cuda<7.0"), Ok(vec![]));
        assert!(on_340("cuda>=7.0").unwrap_err().contains("is not met"));
        assert!(on_340("cuda>=6.5")
            .unwrap_err()
            .contains("cannot tell whether"));
    }

    #[test]
    fn the_variables_are_every_nvidia_require_but_jetpack_each_once() {
        let vars = env(&[
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.0"),
            ("NVIDIA_REQUIRE_JETPACK", "csv-mounts=all"),
            ("NVIDIA_REQUIRE_JETPACK_HOST_MOUNTS", "/a"),
            ("NVIDIA_REQUIRE_DRIVER", "driver>=550"),
            ("NVIDIA_REQUIRE_CUDA", "cuda>=99"),
            ("NVIDIA_REQUIRE_EMPTY", ""),
            ("NVIDIA_REQUIREMENT", "nonsense"),
            ("CUDA_VERSION", "12.4.1"),
        ]);
        let requirements = from_env(&vars, None).unwrap();
        let sources: Vec<&str> = requirements.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(sources, ["NVIDIA_REQUIRE_CUDA", "NVIDIA_REQUIRE_DRIVER"]);
        assert_eq!(requirements[0].alternatives[0][0].text, "cuda>=12.0");
    }

    #[test]
    fn a_legacy_image_requires_its_cuda_major_minor() {
        let requirements = from_env(&[], Some("12.6.2")).unwrap();
        assert_eq!(requirements.len(), 1);
        assert_eq!(
            check(
                &requirements,
                &Host::new("550.54.14", true).unwrap(),
                Unverifiable::Refuse
            ),
            Err(
                "CUDA_VERSION=12.6.2 (a legacy CUDA image): cuda>=12.6 is not met: the driver \
                 550.54.14 supports CUDA 12.4"
                    .into()
            )
        );
        for (version, major_minor) in [
            ("12.4.1", "12.4"),
            ("v11.8.0", "11.8"),
            ("9.0.176", "9.0"),
            ("12", "12.0"),
            ("12.6", "12.6"),
            ("12.4.1-rc.1+build5", "12.4"),
        ] {
            assert_eq!(
                legacy_major_minor(version).as_deref(),
                Some(major_minor),
                "{version}"
            );
        }
        for bad in [
            "abc",
            "12.04",
            "12.4.1.1",
            "12.4-rc1",
            "12.",
            "v",
            "12.4.1-",
            "4294967296.0",
        ] {
            assert_eq!(legacy_major_minor(bad), None, "{bad}");
            let err = from_env(&[], Some(bad)).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "CUDA_VERSION={bad} (a legacy CUDA image): `{bad}` is not a version"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn nvidia_disable_require_reads_as_go_parse_bool() {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_disable(yes), Some(true), "{yes}");
        }
        for no in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_disable(no), Some(false), "{no}");
        }
        for neither in ["", "yes", "on", " true", "tRUE"] {
            assert_eq!(parse_disable(neither), None, "{neither:?}");
        }
    }

    #[test]
    fn the_setting_reads_refuse_or_ignore() {
        let parse = |json| serde_json::from_str::<Unverifiable>(json);
        assert_eq!(parse(r#""refuse""#).unwrap(), Unverifiable::Refuse);
        assert_eq!(parse(r#""ignore""#).unwrap(), Unverifiable::Ignore);
        assert!(parse(r#""pass""#).is_err());
        assert_eq!(Unverifiable::default(), Unverifiable::Refuse);
    }
}
