//! The CUDA version a driver supports, from NVIDIA's published table.
//!
//! libnvidia-container asks libcuda (`cuDriverGetVersion`); a sandboxed
//! plugin can call neither libcuda nor NVML, but knows the driver's version
//! from `/proc/driver/nvidia/version`. The rows below are, for each CUDA
//! major.minor, the lowest Linux x86_64 driver that the table "CUDA Toolkit
//! and Corresponding Driver Versions" of the CUDA Toolkit release notes
//! lists for any release of it
//! (<https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html>,
//! read for CUDA 7.0 to 13.0). CUDA 12.7 was never released: the 565 branch
//! counts as 12.6.

use super::Version;

/// (CUDA major.minor, its minimum driver), oldest first.
const TABLE: [((u64, u64), &str); 28] = [
    ((7, 0), "346.46"),
    ((7, 5), "352.31"),
    ((8, 0), "367.48"),
    ((9, 0), "384.81"),
    ((9, 1), "390.46"),
    ((9, 2), "396.26"),
    ((10, 0), "410.48"),
    ((10, 1), "418.39"),
    ((10, 2), "440.33"),
    ((11, 0), "450.36.06"),
    ((11, 1), "455.23"),
    ((11, 2), "460.27.03"),
    ((11, 3), "465.19.01"),
    ((11, 4), "470.42.01"),
    ((11, 5), "495.29.05"),
    ((11, 6), "510.39.01"),
    ((11, 7), "515.43.04"),
    ((11, 8), "520.61.05"),
    ((12, 0), "525.60.13"),
    ((12, 1), "530.30.02"),
    ((12, 2), "535.54.03"),
    ((12, 3), "545.23.06"),
    ((12, 4), "550.54.14"),
    ((12, 5), "555.42.02"),
    ((12, 6), "560.28.03"),
    ((12, 8), "570.26"),
    ((12, 9), "575.51.03"),
    ((13, 0), "580.65.06"),
];

/// What the table says of a driver's CUDA version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cuda {
    /// The newest CUDA whose minimum the driver meets.
    Exactly(Version),
    /// A branch newer than the table's newest: this CUDA or a later one,
    /// which the table cannot tell.
    AtLeast(Version),
    /// Older than the table's oldest row: a CUDA before this one.
    Below(Version),
}

impl Cuda {
    pub fn of_driver(driver: &Version) -> Cuda {
        let rows: Vec<(Version, Version)> = TABLE
            .iter()
            .map(|&((major, minor), min)| {
                let min = Version::parse(min).expect("the table's versions parse");
                (Version::new(vec![major, minor]), min)
            })
            .collect();
        let (oldest, _) = &rows[0];
        let (newest, newest_min) = &rows[rows.len() - 1];
        match rows.iter().rev().find(|(_, min)| min <= driver) {
            None => Cuda::Below(oldest.clone()),
            // The first number of a driver version is its branch.
            Some((cuda, _)) if cuda == newest && driver.branch() > newest_min.branch() => {
                Cuda::AtLeast(cuda.clone())
            }
            Some((cuda, _)) => Cuda::Exactly(cuda.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuda(driver: &str) -> Cuda {
        Cuda::of_driver(&Version::parse(driver).unwrap())
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn rows_are_ordered_and_parse() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
            assert!(v(pair[0].1) < v(pair[1].1), "{pair:?}");
        }
    }

    #[test]
    fn a_driver_supports_the_newest_cuda_whose_minimum_it_meets() {
        // The examples of the release notes' table.
        assert_eq!(cuda("550.54.14"), Cuda::Exactly(v("12.4")));
        assert_eq!(cuda("525.60.13"), Cuda::Exactly(v("12.0")));
        assert_eq!(cuda("520.61.05"), Cuda::Exactly(v("11.8")));
        assert_eq!(cuda("535.104.05"), Cuda::Exactly(v("12.2")));
        assert_eq!(cuda("470.82.01"), Cuda::Exactly(v("11.4")));
        assert_eq!(cuda("570.26"), Cuda::Exactly(v("12.8")));
        assert_eq!(cuda("418.39"), Cuda::Exactly(v("10.1")));
        // Below a release's minimum, even in its branch: the one before.
        assert_eq!(cuda("550.54.13"), Cuda::Exactly(v("12.3")));
        assert_eq!(cuda("520.61.04"), Cuda::Exactly(v("11.7")));
        // 565 is between the 12.6 and 12.8 rows.
        assert_eq!(cuda("565.57.01"), Cuda::Exactly(v("12.6")));
    }

    #[test]
    fn the_newest_branch_is_exact_and_a_newer_one_is_at_least() {
        assert_eq!(cuda("580.65.06"), Cuda::Exactly(v("13.0")));
        assert_eq!(cuda("580.95.05"), Cuda::Exactly(v("13.0")));
        assert_eq!(cuda("590.44.01"), Cuda::AtLeast(v("13.0")));
        assert_eq!(cuda("610.43.02"), Cuda::AtLeast(v("13.0")));
    }

    #[test]
    fn a_driver_older_than_the_table_is_below_its_oldest_cuda() {
        assert_eq!(cuda("340.108"), Cuda::Below(v("7.0")));
        assert_eq!(cuda("346.46"), Cuda::Exactly(v("7.0")));
    }
}
