//! What a container asks for: `AMD_VISIBLE_DEVICES`, with the grammar of
//! AMD's container toolkit (`all`, indices, ranges, unique IDs).

use std::collections::BTreeSet;

use crate::topology::{format_unique_id, Gpu};

pub const VISIBLE_DEVICES: &str = "AMD_VISIBLE_DEVICES";

/// The value of `AMD_VISIBLE_DEVICES`.
#[derive(Debug, PartialEq, Eq)]
pub enum Visible {
    /// Empty (or only commas): the container gets nothing.
    Nothing,
    /// `all`, in any case.
    All,
    /// A comma list.
    List(Vec<Entry>),
}

/// One item of the comma list.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// `2`: the GPU at that index.
    Index(usize),
    /// `0-2`: the GPUs from the first index to the last, both included.
    Range(usize, usize),
    /// `0x7d41e92a0c3b5f16`: every GPU with that unique ID (the partitions
    /// of one GPU may share it). `written` is the value as given, for
    /// messages.
    UniqueId { id: u64, written: String },
}

impl Visible {
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let value = value.unwrap_or("").trim();
        if value.eq_ignore_ascii_case("all") {
            return Ok(Visible::All);
        }
        let entries: Vec<Entry> = value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Entry::parse)
            .collect::<Result<_, _>>()?;
        Ok(if entries.is_empty() {
            Visible::Nothing
        } else {
            Visible::List(entries)
        })
    }

    /// The GPUs selected among `gpus` (in bus order, so a GPU's position is
    /// its index), with their indices: each once, in bus order, whatever
    /// order the list has. AMD's toolkit sorts them the same way.
    pub fn select<'a>(&self, gpus: &'a [Gpu]) -> Result<Vec<(usize, &'a Gpu)>, String> {
        let indices: Vec<String> = (0..gpus.len()).map(|i| i.to_string()).collect();
        let mut selected = BTreeSet::new();
        match self {
            Visible::Nothing => {}
            // Giving a container /dev/kfd and no GPU is surely not what
            // `all` meant: say so rather than start it without one.
            Visible::All if gpus.is_empty() => {
                return Err(format!(
                    "{VISIBLE_DEVICES}=all: this host has no AMD GPU (its KFD topology lists none)"
                ))
            }
            Visible::All => selected.extend(0..gpus.len()),
            Visible::List(entries) => {
                for entry in entries {
                    match entry {
                        Entry::Index(index) if *index >= gpus.len() => {
                            return Err(not_found(&format!("index {index}"), &indices));
                        }
                        Entry::Index(index) => {
                            selected.insert(*index);
                        }
                        // Checked before expanding, so `0-4000000000` costs nothing.
                        Entry::Range(first, last) if *last >= gpus.len() => {
                            let missing = (*first).max(gpus.len());
                            return Err(not_found(
                                &format!("index {missing} from the range {first}-{last}"),
                                &indices,
                            ));
                        }
                        Entry::Range(first, last) => selected.extend(*first..=*last),
                        Entry::UniqueId { id, written } => {
                            let matching: Vec<usize> = (0..gpus.len())
                                .filter(|&index| gpus[index].unique_id == Some(*id))
                                .collect();
                            if matching.is_empty() {
                                let known = unique_ids(gpus);
                                return Err(not_found(&format!("unique ID {written}"), &known));
                            }
                            selected.extend(matching);
                        }
                    }
                }
            }
        }
        Ok(selected
            .into_iter()
            .map(|index| (index, &gpus[index]))
            .collect())
    }
}

impl Entry {
    fn parse(entry: &str) -> Result<Self, String> {
        // A unique ID as rocm-smi prints it (`0x…`) or, as AMD's toolkit
        // also takes it, bare hex digits when there are more than 8 of them
        // (fewer would be taken for an index).
        let hex = entry
            .strip_prefix("0x")
            .or_else(|| entry.strip_prefix("0X"))
            .or_else(|| (entry.len() > 8 && is_hex(entry)).then_some(entry));
        if let Some(hex) = hex {
            if !is_hex(hex) {
                return Err(invalid(entry));
            }
            return u64::from_str_radix(hex, 16)
                .map(|id| Entry::UniqueId {
                    id,
                    written: entry.to_string(),
                })
                .map_err(|_| {
                    format!("{VISIBLE_DEVICES}: `{entry}` is too long for a unique ID (64 bits)")
                });
        }
        if let Some((first, last)) = entry.split_once('-') {
            return match (index(first.trim()), index(last.trim())) {
                (Some(first), Some(last)) if first <= last => Ok(Entry::Range(first, last)),
                (Some(first), Some(last)) => Err(format!(
                    "{VISIBLE_DEVICES}: `{entry}` is not a range: {first} is greater than {last}"
                )),
                _ => Err(invalid(entry)),
            };
        }
        index(entry).map(Entry::Index).ok_or_else(|| invalid(entry))
    }
}

/// The unique IDs of `gpus`, each once (partitions may share one).
pub fn unique_ids(gpus: &[Gpu]) -> Vec<String> {
    let mut known: Vec<String> = Vec::new();
    for id in gpus.iter().filter_map(|gpu| gpu.unique_id) {
        let id = format_unique_id(id);
        if !known.contains(&id) {
            known.push(id);
        }
    }
    known
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A decimal index: digits only (`parse` alone would take `+1`).
fn index(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn invalid(entry: &str) -> String {
    format!(
        "{VISIBLE_DEVICES}: `{entry}` is not `all`, a GPU index (2), a range (0-2) \
         or a unique ID (0x7d41e92a0c3b5f16)"
    )
}

fn not_found(what: &str, known: &[String]) -> String {
    let host = match known.len() {
        0 => "this host has none".to_string(),
        n => format!("this host has {n}: {}", known.join(", ")),
    };
    format!("{VISIBLE_DEVICES}: no GPU with {what} ({host})")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three GPUs in bus order; the first two share a unique ID (as the
    /// partitions of one GPU may), the last has none.
    fn gpus() -> Vec<Gpu> {
        let ids = [Some(0x2f6a1c0e5b7d9384), Some(0x2f6a1c0e5b7d9384), None];
        ids.iter()
            .enumerate()
            .map(|(i, &unique_id)| Gpu {
                node: i as u32 + 1,
                domain: 0,
                location_id: [0x0300, 0x8300, 0xc300][i],
                unique_id,
                render_minor: 128 + i as u32,
            })
            .collect()
    }

    fn nodes(visible: &str) -> Result<Vec<u32>, String> {
        let gpus = gpus();
        let selected = Visible::parse(Some(visible))?.select(&gpus)?;
        Ok(selected
            .iter()
            .map(|(index, gpu)| {
                assert_eq!(&gpus[*index], *gpu);
                gpu.node
            })
            .collect())
    }

    #[test]
    fn grammar() {
        use Entry::*;
        assert_eq!(Visible::parse(None), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some(" , ")), Ok(Visible::Nothing));
        assert_eq!(Visible::parse(Some("all")), Ok(Visible::All));
        assert_eq!(Visible::parse(Some(" ALL ")), Ok(Visible::All));
        assert_eq!(
            Visible::parse(Some("3, 0-2,1 - 1,0x2F6a,abcdef0123,")),
            Ok(Visible::List(vec![
                Index(3),
                Range(0, 2),
                Range(1, 1),
                UniqueId {
                    id: 0x2f6a,
                    written: "0x2F6a".into()
                },
                UniqueId {
                    id: 0xabcdef0123,
                    written: "abcdef0123".into()
                },
            ]))
        );
        // Eight digits or fewer without 0x are an index.
        assert_eq!(
            Visible::parse(Some("00000012")),
            Ok(Visible::List(vec![Index(12)]))
        );
    }

    #[test]
    fn malformed_values_are_errors_that_name_them() {
        for bad in [
            "gpu0", "+1", "-1", "1-", "1-2-3", "0x", "0xg1", "all,0", "1.5",
        ] {
            assert_eq!(
                Visible::parse(Some(bad)),
                Err(invalid(bad.split(',').find(|e| *e != "0").unwrap())),
                "{bad}"
            );
        }
        assert_eq!(
            Visible::parse(Some("2-0")),
            Err("AMD_VISIBLE_DEVICES: `2-0` is not a range: 2 is greater than 0".into())
        );
        assert_eq!(
            Visible::parse(Some("0x1234567890abcdef0")),
            Err(
                "AMD_VISIBLE_DEVICES: `0x1234567890abcdef0` is too long for a unique ID (64 bits)"
                    .into()
            )
        );
    }

    #[test]
    fn selection_is_in_bus_order_without_repeats() {
        assert_eq!(nodes(""), Ok(vec![]));
        assert_eq!(nodes("all"), Ok(vec![1, 2, 3]));
        assert_eq!(nodes("2,0"), Ok(vec![1, 3]));
        assert_eq!(nodes("1-2"), Ok(vec![2, 3]));
        assert_eq!(nodes("0-1,1,2-2"), Ok(vec![1, 2, 3]));
        // A unique ID selects every partition that has it.
        assert_eq!(nodes("0x2F6A1C0E5B7D9384"), Ok(vec![1, 2]));
        assert_eq!(nodes("2f6a1c0e5b7d9384,2"), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn unknown_gpus_are_errors_that_list_the_hosts() {
        assert_eq!(
            nodes("5"),
            Err("AMD_VISIBLE_DEVICES: no GPU with index 5 (this host has 3: 0, 1, 2)".into())
        );
        assert_eq!(
            nodes("1-4000000000"),
            Err(
                "AMD_VISIBLE_DEVICES: no GPU with index 3 from the range 1-4000000000 \
                 (this host has 3: 0, 1, 2)"
                    .into()
            )
        );
        assert_eq!(
            nodes("4-6"),
            Err(
                "AMD_VISIBLE_DEVICES: no GPU with index 4 from the range 4-6 \
                 (this host has 3: 0, 1, 2)"
                    .into()
            )
        );
        assert_eq!(
            nodes("0xdeadbeef"),
            Err("AMD_VISIBLE_DEVICES: no GPU with unique ID 0xdeadbeef \
                 (this host has 1: 0x2f6a1c0e5b7d9384)"
                .into())
        );
        assert_eq!(
            Visible::parse(Some("0")).unwrap().select(&[]),
            Err("AMD_VISIBLE_DEVICES: no GPU with index 0 (this host has none)".into())
        );
        assert_eq!(
            Visible::All.select(&[]),
            Err("AMD_VISIBLE_DEVICES=all: this host has no AMD GPU \
                 (its KFD topology lists none)"
                .into())
        );
    }
}
