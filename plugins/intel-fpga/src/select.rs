//! What a container asks for and which ports may answer it.
//!
//! A container asks with pairs `FPGA_REGION_N` (an interface ID) and
//! `FPGA_AFU_N` (an AFU ID), as Intel's FPGA admission webhook writes them
//! for its CRI-O hook. N is a pair number: 1, 2, 3… as the webhook counts,
//! though any positive decimal without leading zeros will do, gaps
//! included; pairs are taken in numeric order. One port is chosen per pair.
//!
//! The candidates are every port of the host, unless the spec's
//! `linux.devices` already gives the container FPGA ports (a Kubernetes
//! device plugin allocated them): then only those are.

use std::collections::BTreeMap;

use crate::sysfs::{Fpga, Id, Port, LAYOUTS};

pub const REGION_PREFIX: &str = "FPGA_REGION_";
pub const AFU_PREFIX: &str = "FPGA_AFU_";

/// One pair of variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub n: u32,
    pub interface_id: Id,
    pub afu_id: Id,
}

impl Request {
    /// `FPGA_REGION_N / FPGA_AFU_N`, for messages about the pair as a whole.
    pub fn pair(&self) -> String {
        format!("{REGION_PREFIX}{n} / {AFU_PREFIX}{n}", n = self.n)
    }
}

/// The pairs in `environment` (the container's `process.env` as name and
/// value, in spec order), in pair number order.
///
/// Every variable named `FPGA_REGION_<N>` or `FPGA_AFU_<N>` counts; N must be
/// a positive decimal without leading zeros, and any other name with either
/// prefix is an error. A variable set twice counts once, with its first
/// value, which is what `getenv` in the container returns. An empty value
/// counts as unset.
pub fn requests(environment: &[(String, String)]) -> Result<Vec<Request>, String> {
    // By pair number: the region's and the AFU's variable, each as
    // (name, value).
    type Var<'a> = Option<(&'a str, &'a str)>;
    let mut pairs: BTreeMap<u32, (Var, Var)> = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in environment {
        let (prefix, is_region) = if name.starts_with(REGION_PREFIX) {
            (REGION_PREFIX, true)
        } else if name.starts_with(AFU_PREFIX) {
            (AFU_PREFIX, false)
        } else {
            continue;
        };
        let n = pair_number(&name[prefix.len()..]).ok_or_else(|| {
            format!(
                "{name} is not a pair variable: the part after {prefix} must be a pair \
                 number, 1, 2, 3… without leading zeros"
            )
        })?;
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        if value.trim().is_empty() {
            continue;
        }
        let pair = pairs.entry(n).or_default();
        let var = Some((name.as_str(), value.as_str()));
        if is_region {
            pair.0 = var;
        } else {
            pair.1 = var;
        }
    }
    pairs
        .into_iter()
        .map(|(n, vars)| match vars {
            (Some((region_var, region)), Some((afu_var, afu))) => Ok(Request {
                n,
                interface_id: parse_id(region_var, region)?,
                afu_id: parse_id(afu_var, afu)?,
            }),
            (Some((region_var, _)), None) => Err(format!(
                "{region_var} is set but {AFU_PREFIX}{n} is not: \
                 each region needs the AFU to run in it"
            )),
            (None, Some((afu_var, _))) => Err(format!(
                "{afu_var} is set but {REGION_PREFIX}{n} is not: \
                 each AFU needs the region it runs in"
            )),
            (None, None) => unreachable!("a pair is recorded with a variable"),
        })
        .collect()
}

/// The N of `FPGA_REGION_N`: 1, 2, 3…, no sign, no leading zero.
fn pair_number(text: &str) -> Option<u32> {
    let canonical = text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    // Empty or too large fails to parse.
    canonical.then(|| text.parse().ok()).flatten()
}

fn parse_id(var: &str, value: &str) -> Result<Id, String> {
    Id::parse(value)
        .ok_or_else(|| format!("{var}: `{value}` is not an ID (32 hex digits, dashes allowed)"))
}

/// A character device node: an entry of the spec's `linux.devices`, or a
/// host port's node (`/dev/dfl-port.N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharNode {
    pub path: String,
    pub major: u32,
    pub minor: u32,
}

/// An FPGA port that the spec's `linux.devices` gives the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    /// The node's path in the container, as the spec writes it.
    pub path: String,
    pub major: u32,
    pub minor: u32,
    /// The name of the host port with that device number; none when no port
    /// of this host has it.
    pub port: Option<String>,
}

/// Whether `path` is where a port's node lives: `/dev/dfl-port.N` or
/// `/dev/intel-fpga-port.N`.
pub fn is_port_path(path: &str) -> bool {
    LAYOUTS.iter().any(|layout| {
        path.strip_prefix("/dev/")
            .and_then(|name| name.strip_prefix(layout.port))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The FPGA ports among the spec's character devices `spec`, in spec order,
/// each device number once. `ports` are the host's port nodes.
///
/// A device is a port when its major:minor is a host port node's: the
/// number, not the name, is the device the container gets (the runtime
/// makes the node with it and the device cgroup allows it), and a device
/// plugin may put a node anywhere. A device at a port's path
/// (`/dev/dfl-port.N`) whose number no host port has counts as well, as a
/// port that can answer no pair: the spec allocated something, so the
/// choice is not widened to every host port.
pub fn allocated(spec: &[CharNode], ports: &[CharNode]) -> Vec<Allocated> {
    let mut allocated: Vec<Allocated> = Vec::new();
    for device in spec {
        let number = (device.major, device.minor);
        let port = ports.iter().find(|p| (p.major, p.minor) == number);
        if port.is_none() && !is_port_path(&device.path) {
            continue;
        }
        if allocated.iter().any(|a| (a.major, a.minor) == number) {
            continue;
        }
        allocated.push(Allocated {
            path: device.path.clone(),
            major: device.major,
            minor: device.minor,
            port: port.map(|p| p.path.strip_prefix("/dev/").unwrap_or(&p.path).to_string()),
        });
    }
    allocated
}

/// A port for each request, in order: a port of an FPGA whose interface ID
/// is the request's, running the request's AFU, that no earlier request
/// took. The candidates are the `allocated` ports when there are any (see
/// [`allocated`]), every port otherwise. The first candidate in FPGA and
/// port order wins.
pub fn assign<'a>(
    requests: &[Request],
    fpgas: &'a [Fpga],
    allocated: &[Allocated],
) -> Result<Vec<(&'a Fpga, &'a Port)>, String> {
    if allocated.is_empty() {
        assign_any(requests, fpgas)
    } else {
        assign_allocated(requests, fpgas, allocated)
    }
}

/// Among every port of the host.
fn assign_any<'a>(
    requests: &[Request],
    fpgas: &'a [Fpga],
) -> Result<Vec<(&'a Fpga, &'a Port)>, String> {
    let mut taken: Vec<(&Fpga, &Port)> = Vec::new();
    for request in requests {
        let n = request.n;
        let region: Vec<&Fpga> = fpgas
            .iter()
            .filter(|f| f.interface_id == request.interface_id)
            .collect();
        if region.is_empty() {
            let known: Vec<String> = fpgas
                .iter()
                .map(|f| format!("{} on {}", f.interface_id, f.name))
                .collect();
            let host = match known.len() {
                0 => "this host has none".to_string(),
                n => format!("this host has {n}: {}", known.join(", ")),
            };
            return Err(format!(
                "{REGION_PREFIX}{n}: no FPGA with interface ID {} ({host})",
                request.interface_id
            ));
        }
        let free: Vec<(&Fpga, &Port)> = region
            .iter()
            .flat_map(|&f| f.ports.iter().map(move |p| (f, p)))
            .filter(|(_, p)| !taken.iter().any(|(_, t)| std::ptr::eq(*t, *p)))
            .collect();
        if free.is_empty() {
            return Err(format!(
                "{REGION_PREFIX}{n}: every port with interface ID {} is taken by an earlier pair",
                request.interface_id
            ));
        }
        match free.iter().find(|(_, p)| p.afu_id == request.afu_id) {
            Some(&chosen) => taken.push(chosen),
            None => {
                let running: Vec<String> = free
                    .iter()
                    .map(|(_, p)| format!("{} runs {}", p.name, p.afu_id))
                    .collect();
                return Err(format!(
                    "{AFU_PREFIX}{n}: no free port with interface ID {} runs AFU {} ({}); {NO_PROGRAMMING}",
                    request.interface_id,
                    request.afu_id,
                    running.join(", ")
                ));
            }
        }
    }
    Ok(taken)
}

const NO_PROGRAMMING: &str =
    "hookhost does not program FPGAs: load the AFU on the host before the container starts";

/// Among the ports the spec allocated.
fn assign_allocated<'a>(
    requests: &[Request],
    fpgas: &'a [Fpga],
    allocated: &[Allocated],
) -> Result<Vec<(&'a Fpga, &'a Port)>, String> {
    let candidates: Vec<(&Fpga, &Port)> = fpgas
        .iter()
        .flat_map(|f| f.ports.iter().map(move |p| (f, p)))
        .filter(|(_, p)| allocated.iter().any(|a| a.port.as_ref() == Some(&p.name)))
        .collect();
    // The pair number that took each candidate.
    let mut taken_by: Vec<Option<u32>> = vec![None; candidates.len()];
    let mut chosen = Vec::new();
    for request in requests {
        let found = candidates.iter().zip(&taken_by).position(|((f, p), by)| {
            by.is_none() && f.interface_id == request.interface_id && p.afu_id == request.afu_id
        });
        let Some(i) = found else {
            let considered: Vec<String> = allocated
                .iter()
                .map(|a| describe(a, &candidates, &taken_by))
                .collect();
            // A free allocated port of that interface runs another AFU.
            let other_afu = candidates
                .iter()
                .zip(&taken_by)
                .any(|((f, _), by)| by.is_none() && f.interface_id == request.interface_id);
            return Err(format!(
                "{}: no FPGA port allocated in the spec (linux.devices) has interface ID {}, \
                 runs AFU {} and is free; allocated: {}{}",
                request.pair(),
                request.interface_id,
                request.afu_id,
                considered.join(", "),
                if other_afu {
                    format!("; {NO_PROGRAMMING}")
                } else {
                    String::new()
                }
            ));
        };
        taken_by[i] = Some(request.n);
        chosen.push(candidates[i]);
    }
    Ok(chosen)
}

/// An allocated port, for an error: `/dev/dfl-port.1 [region2, interface
/// ID …, AFU …]`.
fn describe(
    allocated: &Allocated,
    candidates: &[(&Fpga, &Port)],
    taken_by: &[Option<u32>],
) -> String {
    let path = &allocated.path;
    let found = candidates
        .iter()
        .zip(taken_by)
        .find(|((_, p), _)| allocated.port.as_ref() == Some(&p.name));
    let Some(((fpga, port), by)) = found else {
        return format!(
            "{path} [{}:{}, no FPGA port of this host]",
            allocated.major, allocated.minor
        );
    };
    let mut facts = Vec::new();
    if *path != crate::sysfs::node(&port.name) {
        facts.push(format!("{} on {}", port.name, fpga.name));
    } else {
        facts.push(fpga.name.clone());
    }
    facts.push(format!("interface ID {}", fpga.interface_id));
    facts.push(format!("AFU {}", port.afu_id));
    if let Some(n) = by {
        facts.push(format!("taken by {REGION_PREFIX}{n}"));
    }
    format!("{path} [{}]", facts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFACE: &str = "bfac4d851ee856fe8c95865ce1bbaa2d";
    const OTHER_IFACE: &str = "69528db6eb31577a8c3668f9faa081f6";
    const NLB: &str = "d8424dc4a4a3c413f89e433683f9040b";
    const DMA: &str = "f7df405cbd7acf7222f144b0b93acd18";

    fn id(text: &str) -> Id {
        Id::parse(text).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> Result<Vec<Request>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        requests(&vars)
    }

    fn request(n: u32, iface: &str, afu: &str) -> Request {
        Request {
            n,
            interface_id: id(iface),
            afu_id: id(afu),
        }
    }

    #[test]
    fn pairs_are_read_in_number_order() {
        assert_eq!(env(&[]), Ok(vec![]));
        assert_eq!(
            env(&[
                ("FPGA_REGION_2", OTHER_IFACE),
                ("PATH", "/bin"),
                ("FPGA_AFU_2", DMA),
                ("FPGA_REGION_1", "BFAC4D85-1EE8-56FE-8C95-865CE1BBAA2D"),
                ("FPGA_AFU_1", NLB),
            ]),
            Ok(vec![request(1, IFACE, NLB), request(2, OTHER_IFACE, DMA)])
        );
        // Empty is unset.
        assert_eq!(
            env(&[("FPGA_REGION_1", ""), ("FPGA_AFU_1", " ")]),
            Ok(vec![])
        );
    }

    /// By number, not as text: 10 after 9, not before 2.
    #[test]
    fn pairs_past_nine_sort_numerically() {
        let mut vars = Vec::new();
        for n in [10, 2, 9, 1, 11] {
            vars.push((format!("FPGA_AFU_{n}"), NLB.to_string()));
            vars.push((format!("FPGA_REGION_{n}"), IFACE.to_string()));
        }
        let numbers: Vec<u32> = requests(&vars).unwrap().iter().map(|r| r.n).collect();
        assert_eq!(numbers, [1, 2, 9, 10, 11]);
    }

    #[test]
    fn numbers_may_have_gaps() {
        assert_eq!(
            env(&[
                ("FPGA_REGION_3", OTHER_IFACE),
                ("FPGA_AFU_3", DMA),
                ("FPGA_REGION_1", IFACE),
                ("FPGA_AFU_1", NLB),
            ]),
            Ok(vec![request(1, IFACE, NLB), request(3, OTHER_IFACE, DMA)])
        );
        // Not even 1 is needed (though the manifest activates on it).
        assert_eq!(
            env(&[("FPGA_REGION_7", IFACE), ("FPGA_AFU_7", NLB)]),
            Ok(vec![request(7, IFACE, NLB)])
        );
    }

    /// As getenv in the container: the first of two entries wins, even empty.
    #[test]
    fn a_variable_set_twice_counts_with_its_first_value() {
        assert_eq!(
            env(&[
                ("FPGA_REGION_1", IFACE),
                ("FPGA_AFU_1", NLB),
                ("FPGA_AFU_1", DMA),
                ("FPGA_REGION_1", "not an ID"),
            ]),
            Ok(vec![request(1, IFACE, NLB)])
        );
        assert_eq!(
            env(&[
                ("FPGA_REGION_1", ""),
                ("FPGA_REGION_1", IFACE),
                ("FPGA_AFU_1", NLB),
            ]),
            Err("FPGA_AFU_1 is set but FPGA_REGION_1 is not: \
                 each AFU needs the region it runs in"
                .into())
        );
    }

    #[test]
    fn pair_numbers_are_positive_decimals_without_leading_zeros() {
        assert_eq!(pair_number("1"), Some(1));
        assert_eq!(pair_number("64"), Some(64));
        assert_eq!(pair_number("4294967295"), Some(u32::MAX));
        for bad in [
            "",
            "0",
            "01",
            "00",
            "+1",
            "-1",
            "1a",
            "x",
            " 1",
            "4294967296",
        ] {
            assert_eq!(pair_number(bad), None, "{bad:?}");
        }
        for name in [
            "FPGA_REGION_01",
            "FPGA_REGION_0",
            "FPGA_REGION_",
            "FPGA_AFU_DIR",
        ] {
            let prefix = if name.starts_with(REGION_PREFIX) {
                REGION_PREFIX
            } else {
                AFU_PREFIX
            };
            assert_eq!(
                env(&[("FPGA_REGION_1", IFACE), ("FPGA_AFU_1", NLB), (name, "")]),
                Err(format!(
                    "{name} is not a pair variable: the part after {prefix} must be a pair \
                     number, 1, 2, 3… without leading zeros"
                ))
            );
        }
        // Other prefixes are not ours.
        assert_eq!(
            env(&[
                ("FPGA_REGIONS", "2"),
                ("FPGA_AFUS", "x"),
                ("FPGA_REGION", "y")
            ]),
            Ok(vec![])
        );
    }

    #[test]
    fn incomplete_or_malformed_pairs_are_errors() {
        assert_eq!(
            env(&[("FPGA_REGION_1", IFACE)]),
            Err("FPGA_REGION_1 is set but FPGA_AFU_1 is not: \
                 each region needs the AFU to run in it"
                .into())
        );
        assert_eq!(
            env(&[("FPGA_AFU_1", NLB)]),
            Err("FPGA_AFU_1 is set but FPGA_REGION_1 is not: \
                 each AFU needs the region it runs in"
                .into())
        );
        // The first incomplete pair by number is the one named.
        assert_eq!(
            env(&[
                ("FPGA_REGION_1", IFACE),
                ("FPGA_AFU_1", NLB),
                ("FPGA_AFU_12", NLB),
                ("FPGA_REGION_3", IFACE),
            ]),
            Err("FPGA_REGION_3 is set but FPGA_AFU_3 is not: \
                 each region needs the AFU to run in it"
                .into())
        );
        assert_eq!(
            env(&[("FPGA_REGION_1", "nlb0"), ("FPGA_AFU_1", NLB)]),
            Err("FPGA_REGION_1: `nlb0` is not an ID (32 hex digits, dashes allowed)".into())
        );
    }

    /// Two FPGAs of the same interface running different AFUs, and one of
    /// another interface.
    fn fpgas() -> Vec<Fpga> {
        let fpga = |name: &str, fme: &str, iface: &str, ports: &[(&str, &str)]| Fpga {
            driver: "dfl",
            name: name.into(),
            fme: fme.into(),
            interface_id: id(iface),
            ports: ports
                .iter()
                .map(|(name, afu)| Port {
                    name: name.to_string(),
                    afu_id: id(afu),
                })
                .collect(),
        };
        vec![
            fpga("region0", "dfl-fme.0", IFACE, &[("dfl-port.0", NLB)]),
            fpga("region2", "dfl-fme.1", IFACE, &[("dfl-port.1", DMA)]),
            fpga("region4", "dfl-fme.2", OTHER_IFACE, &[("dfl-port.2", NLB)]),
            fpga("region6", "dfl-fme.3", IFACE, &[("dfl-port.3", NLB)]),
        ]
    }

    /// The host's port nodes: dfl-port.N is 508:N.
    fn port_nodes() -> Vec<CharNode> {
        (0..4)
            .map(|n| node(&format!("/dev/dfl-port.{n}"), 508, n))
            .collect()
    }

    fn node(path: &str, major: u32, minor: u32) -> CharNode {
        CharNode {
            path: path.into(),
            major,
            minor,
        }
    }

    /// The ports chosen for these pairs (numbered 1, 2, 3…) when the spec
    /// lists `spec`.
    fn ports_with(pairs: &[(&str, &str)], spec: &[CharNode]) -> Result<Vec<String>, String> {
        let mut vars = Vec::new();
        for (i, (iface, afu)) in pairs.iter().enumerate() {
            vars.push((format!("FPGA_REGION_{}", i + 1), iface.to_string()));
            vars.push((format!("FPGA_AFU_{}", i + 1), afu.to_string()));
        }
        let fpgas = fpgas();
        let allocated = allocated(spec, &port_nodes());
        let assigned = assign(&requests(&vars)?, &fpgas, &allocated)?;
        Ok(assigned.iter().map(|(_, p)| p.name.clone()).collect())
    }

    fn ports(pairs: &[(&str, &str)]) -> Result<Vec<String>, String> {
        ports_with(pairs, &[])
    }

    #[test]
    fn the_region_and_the_afu_choose_the_port() {
        assert_eq!(ports(&[(IFACE, NLB)]), Ok(vec!["dfl-port.0".into()]));
        assert_eq!(ports(&[(IFACE, DMA)]), Ok(vec!["dfl-port.1".into()]));
        assert_eq!(ports(&[(OTHER_IFACE, NLB)]), Ok(vec!["dfl-port.2".into()]));
        assert_eq!(
            ports(&[(IFACE, DMA), (IFACE, NLB), (OTHER_IFACE, NLB)]),
            Ok(vec![
                "dfl-port.1".into(),
                "dfl-port.0".into(),
                "dfl-port.2".into()
            ])
        );
        assert_eq!(
            ports(&[(IFACE, NLB), (IFACE, NLB)]),
            Ok(vec!["dfl-port.0".into(), "dfl-port.3".into()])
        );
    }

    #[test]
    fn unknown_regions_unloaded_afus_and_too_many_pairs_are_errors() {
        let unknown = "ce48969398f05f33946d560708be108a";
        assert_eq!(
            ports(&[(unknown, NLB)]),
            Err(format!(
                "FPGA_REGION_1: no FPGA with interface ID {unknown} (this host has 4: \
                 {IFACE} on region0, {IFACE} on region2, {OTHER_IFACE} on region4, \
                 {IFACE} on region6)"
            ))
        );
        assert_eq!(
            ports(&[(OTHER_IFACE, DMA)]),
            Err(format!(
                "FPGA_AFU_1: no free port with interface ID {OTHER_IFACE} runs AFU {DMA} \
                 (dfl-port.2 runs {NLB}); hookhost does not program FPGAs: load the AFU \
                 on the host before the container starts"
            ))
        );
        // The third pair finds both NLB ports of that interface taken.
        assert_eq!(
            ports(&[(IFACE, NLB), (IFACE, NLB), (IFACE, NLB)]),
            Err(format!(
                "FPGA_AFU_3: no free port with interface ID {IFACE} runs AFU {NLB} \
                 (dfl-port.1 runs {DMA}); hookhost does not program FPGAs: load the AFU \
                 on the host before the container starts"
            ))
        );
        assert_eq!(
            ports(&[(OTHER_IFACE, NLB), (OTHER_IFACE, NLB)]),
            Err(format!(
                "FPGA_REGION_2: every port with interface ID {OTHER_IFACE} is taken by an earlier pair"
            ))
        );
        assert_eq!(
            assign(
                &env(&[("FPGA_REGION_1", IFACE), ("FPGA_AFU_1", NLB)]).unwrap(),
                &[],
                &[]
            ),
            Err(format!(
                "FPGA_REGION_1: no FPGA with interface ID {IFACE} (this host has none)"
            ))
        );
    }

    #[test]
    fn port_paths_of_both_drivers() {
        for path in [
            "/dev/dfl-port.0",
            "/dev/dfl-port.12",
            "/dev/intel-fpga-port.3",
        ] {
            assert!(is_port_path(path), "{path}");
        }
        for path in [
            "/dev/dfl-fme.0",
            "/dev/dfl-port.",
            "/dev/dfl-port.1a",
            "/dev/fpga/dfl-port.0",
            "dfl-port.0",
            "/dev/intel-fpga-fme.0",
        ] {
            assert!(!is_port_path(path), "{path}");
        }
    }

    #[test]
    fn allocated_ports_are_found_by_device_number() {
        let spec = [
            node("/dev/fuse", 10, 229),
            node("/dev/dfl-fme.1", 509, 1),
            node("/dev/dfl-port.1", 508, 1),
            // Elsewhere in the container, the same kind of node.
            node("/dev/fpga/port3", 508, 3),
            // Twice: counted once.
            node("/dev/dfl-port.1", 508, 1),
            // A port's path with a number no host port has.
            node("/dev/dfl-port.7", 508, 7),
        ];
        let port = |path: &str, minor, name: Option<&str>| Allocated {
            path: path.into(),
            major: 508,
            minor,
            port: name.map(Into::into),
        };
        assert_eq!(
            allocated(&spec, &port_nodes()),
            [
                port("/dev/dfl-port.1", 1, Some("dfl-port.1")),
                port("/dev/fpga/port3", 3, Some("dfl-port.3")),
                port("/dev/dfl-port.7", 7, None),
            ]
        );
        // A port's path with another port's number is that other port.
        assert_eq!(
            allocated(&[node("/dev/dfl-port.0", 508, 2)], &port_nodes()),
            [port("/dev/dfl-port.0", 2, Some("dfl-port.2"))]
        );
        assert_eq!(allocated(&[node("/dev/fuse", 10, 229)], &port_nodes()), []);
    }

    #[test]
    fn allocated_ports_are_the_only_candidates() {
        // Unallocated, the first NLB port of the interface.
        assert_eq!(ports(&[(IFACE, NLB)]), Ok(vec!["dfl-port.0".into()]));
        assert_eq!(
            ports_with(&[(IFACE, NLB)], &[node("/dev/dfl-port.3", 508, 3)]),
            Ok(vec!["dfl-port.3".into()])
        );
        assert_eq!(
            ports_with(
                &[(IFACE, NLB), (IFACE, DMA)],
                &[
                    node("/dev/dfl-port.1", 508, 1),
                    node("/dev/fpga/port3", 508, 3),
                ]
            ),
            Ok(vec!["dfl-port.3".into(), "dfl-port.1".into()])
        );
        // Devices that are not ports leave every port a candidate.
        assert_eq!(
            ports_with(&[(IFACE, NLB)], &[node("/dev/fuse", 10, 229)]),
            Ok(vec!["dfl-port.0".into()])
        );
    }

    #[test]
    fn a_pair_no_allocated_port_answers_is_an_error_listing_them() {
        let spec = [
            node("/dev/dfl-port.1", 508, 1),
            node("/dev/fpga/port2", 508, 2),
            node("/dev/dfl-port.7", 508, 7),
        ];
        let allocated = format!(
            "/dev/dfl-port.1 [region2, interface ID {IFACE}, AFU {DMA}], \
             /dev/fpga/port2 [dfl-port.2 on region4, interface ID {OTHER_IFACE}, AFU {NLB}], \
             /dev/dfl-port.7 [508:7, no FPGA port of this host]"
        );
        // The interface is allocated, with another AFU.
        assert_eq!(
            ports_with(&[(IFACE, NLB)], &spec),
            Err(format!(
                "FPGA_REGION_1 / FPGA_AFU_1: no FPGA port allocated in the spec \
                 (linux.devices) has interface ID {IFACE}, runs AFU {NLB} and is free; \
                 allocated: {allocated}; hookhost does not program FPGAs: load the AFU on \
                 the host before the container starts"
            ))
        );
        // Taken by an earlier pair.
        assert_eq!(
            ports_with(&[(OTHER_IFACE, NLB), (OTHER_IFACE, NLB)], &spec[1..]),
            Err(format!(
                "FPGA_REGION_2 / FPGA_AFU_2: no FPGA port allocated in the spec \
                 (linux.devices) has interface ID {OTHER_IFACE}, runs AFU {NLB} and is \
                 free; allocated: /dev/fpga/port2 [dfl-port.2 on region4, interface ID \
                 {OTHER_IFACE}, AFU {NLB}, taken by FPGA_REGION_1], /dev/dfl-port.7 \
                 [508:7, no FPGA port of this host]"
            ))
        );
        // Only ports the host does not have.
        assert_eq!(
            ports_with(&[(IFACE, NLB)], &spec[2..]),
            Err(format!(
                "FPGA_REGION_1 / FPGA_AFU_1: no FPGA port allocated in the spec \
                 (linux.devices) has interface ID {IFACE}, runs AFU {NLB} and is free; \
                 allocated: /dev/dfl-port.7 [508:7, no FPGA port of this host]"
            ))
        );
    }
}
