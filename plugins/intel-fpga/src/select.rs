//! What a container asks for: pairs `FPGA_REGION_N` (an interface ID) and
//! `FPGA_AFU_N` (an AFU ID), as Intel's FPGA admission webhook writes them
//! for its CRI-O hook, numbered 1, 2, 3… One port is chosen per pair.

use crate::sysfs::{Fpga, Id, Port};

pub const REGION_PREFIX: &str = "FPGA_REGION_";
pub const AFU_PREFIX: &str = "FPGA_AFU_";
/// The container's environment cannot be listed, only looked up by name:
/// pairs are looked for up to this number.
pub const MAX_PAIRS: usize = 64;

/// One pair of variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub n: usize,
    pub interface_id: Id,
    pub afu_id: Id,
}

/// The pairs in the environment that `getenv` looks into, in number order.
/// An empty variable counts as unset.
pub fn requests(getenv: impl Fn(&str) -> Option<String>) -> Result<Vec<Request>, String> {
    let get = |name: &str| getenv(name).filter(|v| !v.trim().is_empty());
    let mut requests = Vec::new();
    // The first number with neither variable: a pair after it is a mistake.
    let mut gap = None;
    for n in 1..=MAX_PAIRS {
        let region_var = format!("{REGION_PREFIX}{n}");
        let afu_var = format!("{AFU_PREFIX}{n}");
        match (get(&region_var), get(&afu_var)) {
            (None, None) => {
                gap.get_or_insert(n);
            }
            (Some(region), Some(afu)) => {
                if let Some(gap) = gap {
                    return Err(format!(
                        "{region_var} is set but {REGION_PREFIX}{gap} is not: \
                         number the pairs 1, 2, 3… without gaps"
                    ));
                }
                requests.push(Request {
                    n,
                    interface_id: parse_id(&region_var, &region)?,
                    afu_id: parse_id(&afu_var, &afu)?,
                });
            }
            (Some(_), None) => {
                return Err(format!(
                    "{region_var} is set but {afu_var} is not: \
                     each region needs the AFU to run in it"
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{afu_var} is set but {region_var} is not: \
                     each AFU needs the region it runs in"
                ));
            }
        }
    }
    Ok(requests)
}

fn parse_id(var: &str, value: &str) -> Result<Id, String> {
    Id::parse(value)
        .ok_or_else(|| format!("{var}: `{value}` is not an ID (32 hex digits, dashes allowed)"))
}

/// A port for each request, in order: a port of an FPGA whose interface ID
/// is the request's, running the request's AFU, that no earlier request
/// took. The first such port in FPGA and port order wins.
pub fn assign<'a>(
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
                    "{AFU_PREFIX}{n}: no free port with interface ID {} runs AFU {} ({}); \
                     hookhost does not program FPGAs: load the AFU on the host before \
                     the container starts",
                    request.interface_id,
                    request.afu_id,
                    running.join(", ")
                ));
            }
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const IFACE: &str = "bfac4d851ee856fe8c95865ce1bbaa2d";
    const OTHER_IFACE: &str = "69528db6eb31577a8c3668f9faa081f6";
    const NLB: &str = "d8424dc4a4a3c413f89e433683f9040b";
    const DMA: &str = "f7df405cbd7acf7222f144b0b93acd18";

    fn id(text: &str) -> Id {
        Id::parse(text).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> Result<Vec<Request>, String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        requests(|name| vars.get(name).cloned())
    }

    #[test]
    fn pairs_are_read_in_number_order() {
        assert_eq!(env(&[]), Ok(vec![]));
        assert_eq!(
            env(&[
                ("FPGA_REGION_2", OTHER_IFACE),
                ("FPGA_AFU_2", DMA),
                ("FPGA_REGION_1", "BFAC4D85-1EE8-56FE-8C95-865CE1BBAA2D"),
                ("FPGA_AFU_1", NLB),
            ]),
            Ok(vec![
                Request {
                    n: 1,
                    interface_id: id(IFACE),
                    afu_id: id(NLB)
                },
                Request {
                    n: 2,
                    interface_id: id(OTHER_IFACE),
                    afu_id: id(DMA)
                },
            ])
        );
        // Empty is unset.
        assert_eq!(
            env(&[("FPGA_REGION_1", ""), ("FPGA_AFU_1", " ")]),
            Ok(vec![])
        );
    }

    #[test]
    fn incomplete_gapped_or_malformed_pairs_are_errors() {
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
        assert_eq!(
            env(&[
                ("FPGA_REGION_1", IFACE),
                ("FPGA_AFU_1", NLB),
                ("FPGA_REGION_3", IFACE),
                ("FPGA_AFU_3", NLB),
            ]),
            Err("FPGA_REGION_3 is set but FPGA_REGION_2 is not: \
                 number the pairs 1, 2, 3… without gaps"
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
        ]
    }

    fn ports(pairs: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let mut vars = Vec::new();
        for (i, (iface, afu)) in pairs.iter().enumerate() {
            vars.push((format!("FPGA_REGION_{}", i + 1), iface.to_string()));
            vars.push((format!("FPGA_AFU_{}", i + 1), afu.to_string()));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let fpgas = fpgas();
        let assigned = assign(&env(&vars)?, &fpgas)?;
        Ok(assigned.iter().map(|(_, p)| p.name.clone()).collect())
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
    }

    #[test]
    fn unknown_regions_unloaded_afus_and_too_many_pairs_are_errors() {
        let unknown = "ce48969398f05f33946d560708be108a";
        assert_eq!(
            ports(&[(unknown, NLB)]),
            Err(format!(
                "FPGA_REGION_1: no FPGA with interface ID {unknown} (this host has 3: \
                 {IFACE} on region0, {IFACE} on region2, {OTHER_IFACE} on region4)"
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
        // The second pair finds the one NLB port of that interface taken.
        assert_eq!(
            ports(&[(IFACE, NLB), (IFACE, NLB)]),
            Err(format!(
                "FPGA_AFU_2: no free port with interface ID {IFACE} runs AFU {NLB} \
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
                &[]
            ),
            Err(format!(
                "FPGA_REGION_1: no FPGA with interface ID {IFACE} (this host has none)"
            ))
        );
    }
}
