//! The Intel FPGAs of this host, as their kernel drivers show them in sysfs.
//!
//! An FPGA (a PAC card's FIM) has one FME, the management engine that
//! programs its partial-reconfiguration region, and one or more ports, each
//! running an AFU (the accelerator). The interface ID of the region says
//! which AFUs can be loaded into it; the port's AFU ID says which one is
//! loaded. Two drivers name them differently:
//!
//! - the upstream DFL driver: `/sys/class/fpga_region/regionN/` holds
//!   `dfl-fme.K/` (the interface ID is the `compat_id` of the FME's PR
//!   region, `dfl-fme-region.M/fpga_region/regionP/`) and `dfl-port.J/`
//!   (`afu_id`); nodes `/dev/dfl-fme.K` and `/dev/dfl-port.J`;
//! - the older out-of-tree `intel-fpga` driver of OPAE 1.x:
//!   `/sys/class/fpga/intel-fpga-dev.N/` holds `intel-fpga-fme.K/`
//!   (`pr/interface_id`) and `intel-fpga-port.J/` (`afu_id`); nodes
//!   `/dev/intel-fpga-fme.K` and `/dev/intel-fpga-port.J`.
//!
//! Both print IDs as 32 hex digits.

use std::collections::BTreeMap;
use std::fmt;

use hookhost_plugin::{host, log};

/// Where one driver puts things.
#[derive(Debug)]
pub struct Layout {
    pub driver: &'static str,
    /// The FPGAs' sysfs directories: a glob.
    pub fpgas: &'static str,
    /// Name prefixes of the FME and port directories, which are also the
    /// names of their nodes in `/dev`.
    pub fme: &'static str,
    pub port: &'static str,
    /// Under the FME's directory: the interface ID of its region.
    pub interface_id: &'static str,
}

pub const LAYOUTS: [Layout; 2] = [
    Layout {
        driver: "dfl",
        fpgas: "/sys/class/fpga_region/region*",
        fme: "dfl-fme.",
        port: "dfl-port.",
        interface_id: "dfl-fme-region.*/fpga_region/region*/compat_id",
    },
    Layout {
        driver: "intel-fpga",
        fpgas: "/sys/class/fpga/intel-fpga-dev.*",
        fme: "intel-fpga-fme.",
        port: "intel-fpga-port.",
        interface_id: "pr/interface_id",
    },
];

impl Layout {
    pub fn interface_ids(&self) -> String {
        format!("{}/{}*/{}", self.fpgas, self.fme, self.interface_id)
    }

    pub fn afu_ids(&self) -> String {
        format!("{}/{}*/afu_id", self.fpgas, self.port)
    }
}

/// The node of an FME or port: `/dev/<its sysfs directory's name>`.
pub fn node(name: &str) -> String {
    format!("/dev/{name}")
}

/// Enough for a one-line sysfs attribute.
const ATTRIBUTE_LIMIT: u32 = 4096;

/// A 128-bit interface or AFU ID: 32 lowercase hex digits, the form sysfs
/// prints and Intel's tools compare (they drop dashes and ignore case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    pub fn parse(text: &str) -> Option<Id> {
        let id: String = text.trim().replace('-', "").to_ascii_lowercase();
        (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(Id(id))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One FPGA: its FME and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fpga {
    pub driver: &'static str,
    /// Its sysfs directory's name: `region0`, `intel-fpga-dev.0`.
    pub name: String,
    /// The FME's name, which is its node's: `dfl-fme.0`.
    pub fme: String,
    pub interface_id: Id,
    /// In port number order.
    pub ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The port's name, which is its node's: `dfl-port.0`.
    pub name: String,
    pub afu_id: Id,
}

/// The FPGAs of both drivers, DFL's first, each in number order.
pub fn probe() -> Result<Vec<Fpga>, String> {
    let mut fpgas = Vec::new();
    for layout in &LAYOUTS {
        let interface_ids = read_ids(&layout.interface_ids())?;
        let afu_ids = read_ids(&layout.afu_ids())?;
        let (found, orphans) = assemble(layout, &interface_ids, &afu_ids)?;
        for path in orphans {
            // Without its FME's interface ID, no FPGA_REGION_N can name it.
            log::debug!("{path}: a port without an FME beside it, left out");
        }
        fpgas.extend(found);
    }
    Ok(fpgas)
}

/// Every file matching `pattern`, with its ID.
fn read_ids(pattern: &str) -> Result<Vec<(String, Id)>, String> {
    host::glob(pattern)?
        .into_iter()
        .map(|path| {
            let text = host::read_to_string(&path, ATTRIBUTE_LIMIT)?;
            let id = Id::parse(&text)
                .ok_or_else(|| format!("{path}: `{}` is not a 128-bit ID", text.trim()))?;
            Ok((path, id))
        })
        .collect()
}

/// Groups the ID files found for `layout` into FPGAs. Returns them with the
/// paths of ports that have no FME beside them.
fn assemble(
    layout: &Layout,
    interface_ids: &[(String, Id)],
    afu_ids: &[(String, Id)],
) -> Result<(Vec<Fpga>, Vec<String>), String> {
    // By FPGA directory: the FME's name and the interface IDs of its regions.
    let mut fmes: BTreeMap<&str, (&str, Vec<&Id>)> = BTreeMap::new();
    for (path, id) in interface_ids {
        let (fpga, fme) = names(layout, path)?;
        let entry = fmes.entry(fpga).or_insert((fme, Vec::new()));
        if entry.0 != fme {
            return Err(format!(
                "{fpga} has two FMEs, {} and {fme}; one FPGA has one",
                entry.0
            ));
        }
        entry.1.push(id);
    }
    let mut fpgas = Vec::new();
    for (fpga, (fme, ids)) in fmes {
        // Every PR region of an FME reports the FME's interface ID.
        if ids.iter().any(|id| *id != ids[0]) {
            let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            return Err(format!(
                "{fme} on {fpga}: its regions report different interface IDs ({})",
                ids.join(", ")
            ));
        }
        fpgas.push(Fpga {
            driver: layout.driver,
            name: fpga.to_string(),
            fme: fme.to_string(),
            interface_id: ids[0].clone(),
            ports: Vec::new(),
        });
    }
    let mut orphans = Vec::new();
    for (path, afu_id) in afu_ids {
        let (fpga, port) = names(layout, path)?;
        match fpgas.iter_mut().find(|f| f.name == fpga) {
            Some(fpga) => fpga.ports.push(Port {
                name: port.to_string(),
                afu_id: afu_id.clone(),
            }),
            None => orphans.push(path.clone()),
        }
    }
    fpgas.sort_by_key(|f| number(&f.name));
    for fpga in &mut fpgas {
        fpga.ports.sort_by_key(|p| number(&p.name));
    }
    Ok((fpgas, orphans))
}

/// The FPGA directory's and the FME's or port's names in a path that the
/// layout's globs found: the two components after the class directory.
fn names<'a>(layout: &Layout, path: &'a str) -> Result<(&'a str, &'a str), String> {
    let class = layout.fpgas.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut parts = path
        .strip_prefix(class)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|rest| rest.split('/'))
        .ok_or_else(|| format!("{path} is not under {class}"))?;
    match (parts.next(), parts.next()) {
        (Some(fpga), Some(child)) => Ok((fpga, child)),
        _ => Err(format!("{path} is not under {class}")),
    }
}

/// The number that ends a name (`region12` → 12), for ordering: sorted as
/// text, region10 would come before region2.
fn number(name: &str) -> u64 {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_A: &str = "bfac4d851ee856fe8c95865ce1bbaa2d";
    const ID_B: &str = "d8424dc4a4a3c413f89e433683f9040b";

    fn id(text: &str) -> Id {
        Id::parse(text).unwrap()
    }

    #[test]
    fn ids() {
        assert_eq!(id("bfac4d851ee856fe8c95865ce1bbaa2d\n").to_string(), ID_A);
        assert_eq!(id("BFAC4D85-1EE8-56FE-8C95-865CE1BBAA2D"), id(ID_A));
        for bad in [
            "",
            "bfac4d85",
            "bfac4d851ee856fe8c95865ce1bbaa2dff",
            "xfac4d851ee856fe8c95865ce1bbaa2d",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(number("region12"), 12);
        assert_eq!(number("dfl-port.3"), 3);
        assert_eq!(number("intel-fpga-dev.0"), 0);
        assert_eq!(number("odd"), u64::MAX);
    }

    fn entry(path: &str, value: &str) -> (String, Id) {
        (path.to_string(), id(value))
    }

    #[test]
    fn dfl_fpgas_gather_their_fme_and_ports_in_number_order() {
        let dfl = &LAYOUTS[0];
        let interface_ids = [
            entry(
                "/sys/class/fpga_region/region10/dfl-fme.1/dfl-fme-region.11/fpga_region/region11/compat_id",
                ID_B,
            ),
            entry(
                "/sys/class/fpga_region/region2/dfl-fme.0/dfl-fme-region.3/fpga_region/region3/compat_id",
                ID_A,
            ),
        ];
        let afu_ids = [
            entry("/sys/class/fpga_region/region10/dfl-port.10/afu_id", ID_A),
            entry("/sys/class/fpga_region/region10/dfl-port.9/afu_id", ID_B),
            entry("/sys/class/fpga_region/region2/dfl-port.0/afu_id", ID_B),
            entry("/sys/class/fpga_region/region7/dfl-port.4/afu_id", ID_B),
        ];
        let (fpgas, orphans) = assemble(dfl, &interface_ids, &afu_ids).unwrap();
        let port = |name: &str, afu: &str| Port {
            name: name.into(),
            afu_id: id(afu),
        };
        assert_eq!(
            fpgas,
            [
                Fpga {
                    driver: "dfl",
                    name: "region2".into(),
                    fme: "dfl-fme.0".into(),
                    interface_id: id(ID_A),
                    ports: vec![port("dfl-port.0", ID_B)],
                },
                Fpga {
                    driver: "dfl",
                    name: "region10".into(),
                    fme: "dfl-fme.1".into(),
                    interface_id: id(ID_B),
                    ports: vec![port("dfl-port.9", ID_B), port("dfl-port.10", ID_A)],
                },
            ]
        );
        assert_eq!(
            orphans,
            ["/sys/class/fpga_region/region7/dfl-port.4/afu_id"]
        );
    }

    #[test]
    fn the_older_driver_reads_the_same_way() {
        let old = &LAYOUTS[1];
        let (fpgas, _) = assemble(
            old,
            &[entry(
                "/sys/class/fpga/intel-fpga-dev.0/intel-fpga-fme.0/pr/interface_id",
                ID_A,
            )],
            &[entry(
                "/sys/class/fpga/intel-fpga-dev.0/intel-fpga-port.0/afu_id",
                ID_B,
            )],
        )
        .unwrap();
        assert_eq!(fpgas[0].driver, "intel-fpga");
        assert_eq!(fpgas[0].fme, "intel-fpga-fme.0");
        assert_eq!(fpgas[0].ports[0].name, "intel-fpga-port.0");
    }

    #[test]
    fn inconsistent_sysfs_is_an_error() {
        let dfl = &LAYOUTS[0];
        let two_fmes = [
            entry("/sys/class/fpga_region/region0/dfl-fme.0/dfl-fme-region.1/fpga_region/region1/compat_id", ID_A),
            entry("/sys/class/fpga_region/region0/dfl-fme.1/dfl-fme-region.2/fpga_region/region2/compat_id", ID_A),
        ];
        assert_eq!(
            assemble(dfl, &two_fmes, &[]).unwrap_err(),
            "region0 has two FMEs, dfl-fme.0 and dfl-fme.1; one FPGA has one"
        );
        let two_ids = [
            entry("/sys/class/fpga_region/region0/dfl-fme.0/dfl-fme-region.1/fpga_region/region1/compat_id", ID_A),
            entry("/sys/class/fpga_region/region0/dfl-fme.0/dfl-fme-region.2/fpga_region/region2/compat_id", ID_B),
        ];
        assert_eq!(
            assemble(dfl, &two_ids, &[]).unwrap_err(),
            format!(
                "dfl-fme.0 on region0: its regions report different interface IDs ({ID_A}, {ID_B})"
            )
        );
    }
}
