//! The cgroup v2 device program, built from rules.
//!
//! cgroup v2 has no `devices.allow`: the kernel asks a BPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup for
//! every open and mknod of a device node. runc attaches one built from the
//! spec's `linux.resources.devices`; to allow more, hookhost builds a whole
//! new program from the same rules plus the plan's and replaces runc's (see
//! [`super::cgroup::V2`]). It never patches the loaded program: its shape
//! is runc's private business (NVIDIA's patching broke on kernel 6.12).
//!
//! The decision is runc's (libcontainer's devicefilter): the last rule that
//! matches wins, and nothing matching means deny. So the program tests the
//! rules last to first and returns the first match's verdict. One
//! difference: runc first runs the rules through its cgroup v1 emulator,
//! which ignores a deny that punches a hole in a wildcard allow (and the
//! reverse); here the later rule always wins, as the spec's order says.
//!
//! The instructions are few and hand-assembled: a library for them (aya)
//! would cost more build than the four system calls it would save.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::lowering::DeviceRule;
use crate::plan::DeviceType;

/// `BPF_DEVCG_ACC_*`: the access bits of `bpf_cgroup_dev_ctx.access_type`.
pub const ACC_READ: u32 = 1;
pub const ACC_WRITE: u32 = 2;
pub const ACC_MKNOD: u32 = 4;
const ACC_ALL: u32 = ACC_READ | ACC_WRITE | ACC_MKNOD;
/// `BPF_DEVCG_DEV_*`: the device types.
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("device rule {rule}: access `{access}` is not a subset of rwm")]
    Access { rule: String, access: String },
    #[error("device rule {rule}: type {kind:?} has no device cgroup rules")]
    Type { rule: String, kind: LinuxDeviceType },
    #[error("device rule {rule}: {what} {value} is out of range")]
    Number {
        rule: String,
        what: &'static str,
        value: i64,
    },
}

/// One rule of the program; `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Option<DeviceType>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits: the rule matches a request for a subset of them.
    pub access: u32,
}

impl Rule {
    /// An allow rule of the plan.
    pub fn allowing(rule: &DeviceRule) -> Result<Rule, BpfError> {
        Ok(Rule {
            allow: true,
            kind: Some(rule.kind),
            major: Some(rule.major),
            minor: Some(rule.minor),
            access: access_bits(&rule.access, || rule.to_string())?,
        })
    }

    /// A rule of the spec's `linux.resources.devices`. A missing access
    /// means all of rwm, as in runc.
    pub fn from_spec(rule: &LinuxDeviceCgroup) -> Result<Rule, BpfError> {
        let name = || format!("{rule:?}");
        let kind = match rule.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DeviceType::Char),
            Some(LinuxDeviceType::B) => Some(DeviceType::Block),
            Some(kind) => return Err(BpfError::Type { rule: name(), kind }),
        };
        let number = |what, value: Option<i64>| match value {
            // -1 is how some engines write a wildcard.
            None | Some(-1) => Ok(None),
            Some(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(Some(v as u32)),
            Some(value) => Err(BpfError::Number {
                rule: name(),
                what,
                value,
            }),
        };
        Ok(Rule {
            allow: rule.allow(),
            kind,
            major: number("major", rule.major())?,
            minor: number("minor", rule.minor())?,
            access: match rule.access().as_deref() {
                None | Some("") => ACC_ALL,
                Some(access) => access_bits(access, name)?,
            },
        })
    }

    /// Whether the rule decides every request (`a *:* rwm`).
    fn matches_all(&self) -> bool {
        self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

fn access_bits(access: &str, rule: impl Fn() -> String) -> Result<u32, BpfError> {
    access.chars().try_fold(0, |bits, c| match c {
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        'm' => Ok(bits | ACC_MKNOD),
        _ => Err(BpfError::Access {
            rule: rule(),
            access: access.to_string(),
        }),
    })
}

/// The rules runc appends to the spec's (its `AllowedDevices`): mknod of
/// any node, and /dev/null, zero, full, random, urandom, tty, ptmx and the
/// ptys. runc 1.1 also allowed /dev/net/tun (10:200); 1.2 dropped it for
/// being a hole, and so does hookhost.
pub fn runc_defaults() -> Vec<Rule> {
    let char_dev = |major, minor: Option<u32>, access| Rule {
        allow: true,
        kind: Some(DeviceType::Char),
        major,
        minor,
        access,
    };
    let mut rules = vec![
        char_dev(None, None, ACC_MKNOD),
        Rule {
            kind: Some(DeviceType::Block),
            ..char_dev(None, None, ACC_MKNOD)
        },
    ];
    for (major, minor) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 2)] {
        rules.push(char_dev(Some(major), Some(minor), ACC_ALL));
    }
    rules.push(char_dev(Some(136), None, ACC_ALL));
    rules
}

/// One `struct bpf_insn`, encoded as the kernel reads it on a
/// little-endian machine: code, dst_reg (low nibble) and src_reg, off, imm.
pub fn encode(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst | (src << 4)) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

// The opcodes used (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU_AND_K: u8 = 0x54; // dst = (u32)(dst & imm)
const ALU_RSH_K: u8 = 0x74; // dst = (u32)(dst >> imm)
const ALU_MOV_K: u8 = 0xb4; // dst = (u32)imm
const ALU_MOV_X: u8 = 0xbc; // dst = (u32)src
const JMP_JNE_K: u8 = 0x55; // if dst != imm: pc += off
const JMP_JNE_X: u8 = 0x5d; // if dst != src: pc += off
const JMP_EXIT: u8 = 0x95; // return r0

/// The program for `rules`, in spec order: the last matching rule's
/// verdict (1 allows, 0 denies), deny when none matches.
///
/// r1 is the context (`struct bpf_cgroup_dev_ctx { u32 access_type; u32
/// major; u32 minor; }`, access_type = access << 16 | type); the prologue
/// loads r2 = type, r3 = access, r4 = major, r5 = minor.
pub fn program(rules: &[Rule]) -> Vec<u64> {
    let mut insns = vec![
        encode(LDX_MEM_W, 2, 1, 0, 0),
        encode(ALU_AND_K, 2, 0, 0, 0xffff),
        encode(LDX_MEM_W, 3, 1, 0, 0),
        encode(ALU_RSH_K, 3, 0, 0, 16),
        encode(LDX_MEM_W, 4, 1, 4, 0),
        encode(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        insns.extend(block(rule));
        // Nothing before a rule that matches everything is ever reached.
        if rule.matches_all() {
            return insns;
        }
    }
    insns.push(encode(ALU_MOV_K, 0, 0, 0, 0));
    insns.push(encode(JMP_EXIT, 0, 0, 0, 0));
    insns
}

/// One rule: tests that jump past the block on a mismatch, then the
/// verdict.
fn block(rule: &Rule) -> Vec<u64> {
    // (opcode, dst, src, imm) of each test, the jump offset filled after.
    let mut tests: Vec<(u8, u8, u8, i32)> = Vec::new();
    let mut moves = Vec::new();
    if let Some(kind) = rule.kind {
        let kind = match kind {
            DeviceType::Block => DEV_BLOCK,
            DeviceType::Char => DEV_CHAR,
        };
        tests.push((JMP_JNE_K, 2, 0, kind as i32));
    }
    if rule.access != ACC_ALL {
        // The request's access bits must all be in the rule's: r1 = r3 &
        // rule; r1 != r3 means one is missing.
        tests.push((JMP_JNE_X, 1, 3, 0));
        moves.push(tests.len() - 1);
    }
    if let Some(major) = rule.major {
        tests.push((JMP_JNE_K, 4, 0, major as i32));
    }
    if let Some(minor) = rule.minor {
        tests.push((JMP_JNE_K, 5, 0, minor as i32));
    }
    let len = tests.len() + 2 * moves.len() + 2;
    let mut insns = Vec::with_capacity(len);
    for (i, (code, dst, src, imm)) in tests.into_iter().enumerate() {
        if moves.contains(&i) {
            insns.push(encode(ALU_MOV_X, 1, 3, 0, 0));
            insns.push(encode(ALU_AND_K, 1, 0, 0, rule.access as i32));
        }
        // Past this jump to the end of the block.
        let off = (len - insns.len() - 1) as i16;
        insns.push(encode(code, dst, src, off, imm));
    }
    insns.push(encode(ALU_MOV_K, 0, 0, 0, i32::from(rule.allow)));
    insns.push(encode(JMP_EXIT, 0, 0, 0, 0));
    insns
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` on one request the way the kernel would, for the
    /// instructions [`program`] emits (any other fails the test).
    fn run(program: &[u64], kind: u32, major: u32, minor: u32, access: u32) -> u64 {
        let ctx = [access << 16 | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let insn = program[pc];
            let (code, dst, src) = (
                insn as u8,
                (insn >> 8) as usize & 0xf,
                (insn >> 12) as usize & 0xf,
            );
            let off = (insn >> 16) as u16 as i16;
            let imm = (insn >> 32) as u32;
            pc += 1;
            let jump = |taken: bool, pc: &mut usize| {
                if taken {
                    *pc = (*pc as isize + off as isize) as usize;
                }
            };
            match code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[off as usize / 4]);
                }
                ALU_AND_K => r[dst] = (r[dst] as u32 & imm) as u64,
                ALU_RSH_K => r[dst] = ((r[dst] as u32) >> imm) as u64,
                ALU_MOV_K => r[dst] = imm as u64,
                ALU_MOV_X => r[dst] = r[src] as u32 as u64,
                JMP_JNE_K => jump(r[dst] != imm as i32 as i64 as u64, &mut pc),
                JMP_JNE_X => jump(r[dst] != r[src], &mut pc),
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        kind: Option<DeviceType>,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access: access_bits(access, String::new).unwrap(),
        }
    }

    const C: Option<DeviceType> = Some(DeviceType::Char);

    #[test]
    fn no_rules_deny_everything() {
        let p = program(&[]);
        assert_eq!(run(&p, DEV_CHAR, 1, 3, ACC_READ), 0);
        assert_eq!(p.len(), 8, "prologue, r0 = 0, exit");
        assert_eq!(p[6], encode(ALU_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[7], encode(JMP_EXIT, 0, 0, 0, 0));
    }

    #[test]
    fn an_exact_rule_allows_its_device_and_access_only() {
        let p = program(&[rule(true, C, Some(195), Some(0), "rw")]);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_READ), 1);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_READ | ACC_WRITE), 1);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_MKNOD), 0, "m not given");
        assert_eq!(run(&p, DEV_CHAR, 195, 1, ACC_READ), 0);
        assert_eq!(run(&p, DEV_CHAR, 196, 0, ACC_READ), 0);
        assert_eq!(run(&p, DEV_BLOCK, 195, 0, ACC_READ), 0);
    }

    #[test]
    fn the_emitted_block_is_the_expected_instructions() {
        let p = program(&[rule(true, C, Some(195), Some(0), "rw")]);
        // Type, access (2 moves + jump), major, minor, verdict: 8 long, so
        // each jump lands on the instruction after the block's exit.
        assert_eq!(
            p[6..14],
            [
                encode(JMP_JNE_K, 2, 0, 7, DEV_CHAR as i32),
                encode(ALU_MOV_X, 1, 3, 0, 0),
                encode(ALU_AND_K, 1, 0, 0, 3),
                encode(JMP_JNE_X, 1, 3, 4, 0),
                encode(JMP_JNE_K, 4, 0, 3, 195),
                encode(JMP_JNE_K, 5, 0, 2, 0),
                encode(ALU_MOV_K, 0, 0, 0, 1),
                encode(JMP_EXIT, 0, 0, 0, 0),
            ]
        );
    }

    #[test]
    fn the_last_matching_rule_wins() {
        let deny_all = rule(false, None, None, None, "rwm");
        let allow = rule(true, C, Some(195), None, "rwm");
        let deny_one = rule(false, C, Some(195), Some(1), "rwm");
        let p = program(&[deny_all.clone(), allow.clone(), deny_one.clone()]);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_READ), 1);
        assert_eq!(run(&p, DEV_CHAR, 195, 1, ACC_READ), 0);
        assert_eq!(run(&p, DEV_CHAR, 1, 3, ACC_READ), 0);
        // The other order: the allow comes last and wins.
        let p = program(&[deny_all, deny_one, allow]);
        assert_eq!(run(&p, DEV_CHAR, 195, 1, ACC_READ), 1);
    }

    #[test]
    fn an_allow_all_rule_cuts_off_the_rules_before_it() {
        let p = program(&[
            rule(false, C, Some(195), Some(0), "rwm"),
            rule(true, None, None, None, "rwm"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_READ), 1);
        assert_eq!(run(&p, DEV_BLOCK, 8, 0, ACC_WRITE), 1);
        assert_eq!(p.len(), 6 + 2, "prologue and the verdict, nothing else");
    }

    #[test]
    fn wildcards_match_any_type_major_or_minor() {
        let p = program(&[
            rule(true, None, Some(10), None, "m"),
            rule(true, C, None, Some(7), "r"),
        ]);
        assert_eq!(run(&p, DEV_BLOCK, 10, 99, ACC_MKNOD), 1);
        assert_eq!(run(&p, DEV_BLOCK, 10, 99, ACC_READ), 0);
        assert_eq!(run(&p, DEV_CHAR, 42, 7, ACC_READ), 1);
        assert_eq!(run(&p, DEV_BLOCK, 42, 7, ACC_READ), 0);
    }

    #[test]
    fn runcs_defaults_keep_dev_null_and_mknod_but_not_tun() {
        let p = program(&runc_defaults());
        assert_eq!(run(&p, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE), 1);
        assert_eq!(run(&p, DEV_CHAR, 136, 4, ACC_READ), 1);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_MKNOD), 1);
        assert_eq!(run(&p, DEV_CHAR, 195, 0, ACC_READ), 0);
        assert_eq!(run(&p, DEV_CHAR, 10, 200, ACC_READ), 0);
    }

    #[test]
    fn spec_rules_read_wildcards_and_refuse_bad_access() {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 195, "access": "rw"},
                {"allow": true, "type": "b", "major": 8, "minor": -1}]"#,
        )
        .unwrap();
        let rules: Vec<Rule> = spec.iter().map(|r| Rule::from_spec(r).unwrap()).collect();
        assert_eq!(rules[0], rule(false, None, None, None, "rwm"));
        assert_eq!(rules[1], rule(true, C, Some(195), None, "rw"));
        assert_eq!(
            rules[2],
            rule(true, Some(DeviceType::Block), Some(8), None, "rwm")
        );
        let bad: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow": true, "access": "rx"}"#).unwrap();
        assert!(matches!(
            Rule::from_spec(&bad),
            Err(BpfError::Access { .. })
        ));
    }
}
