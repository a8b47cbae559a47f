//! What several CLI test files share: the reference fixtures' folder, and the array-job
//! engines' variables for four tasks.

/// `tools/reference/fixtures`.
#[allow(dead_code)]
pub fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/reference/fixtures")
}

/// A path as a command-line argument.
#[allow(dead_code)]
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

/// An engine's variables for task `k` (0-based) of 4.
pub type Vars = fn(u64) -> Vec<(&'static str, String)>;

/// The variables that name a task index, for each engine (cleared before a test sets its own).
pub const INDEX_VARS: [&str; 5] = [
    "SLURM_ARRAY_TASK_ID",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "CLOUD_RUN_TASK_INDEX",
    "BATCH_TASK_INDEX",
];

/// Each engine as `--shard env` names it, its variables for four tasks (Slurm's array 1-4),
/// and the extra arguments it needs (Kubernetes does not expose the count).
pub fn engines() -> [(&'static str, Vars, &'static [&'static str]); 5] {
    [
        (
            "Slurm",
            |k| {
                vec![
                    ("SLURM_ARRAY_TASK_ID", (k + 1).to_string()),
                    ("SLURM_ARRAY_TASK_COUNT", "4".into()),
                    ("SLURM_ARRAY_TASK_MIN", "1".into()),
                    ("SLURM_ARRAY_TASK_MAX", "4".into()),
                ]
            },
            &[],
        ),
        (
            "Kubernetes",
            |k| vec![("JOB_COMPLETION_INDEX", k.to_string())],
            &["--shards", "4"],
        ),
        (
            "AWS Batch",
            |k| {
                vec![
                    ("AWS_BATCH_JOB_ARRAY_INDEX", k.to_string()),
                    ("AWS_BATCH_JOB_ARRAY_SIZE", "4".into()),
                ]
            },
            &[],
        ),
        (
            "Cloud Run",
            |k| {
                vec![
                    ("CLOUD_RUN_TASK_INDEX", k.to_string()),
                    ("CLOUD_RUN_TASK_COUNT", "4".into()),
                ]
            },
            &[],
        ),
        (
            "Cloud Batch",
            |k| {
                vec![
                    ("BATCH_TASK_INDEX", k.to_string()),
                    ("BATCH_TASK_COUNT", "4".into()),
                ]
            },
            &[],
        ),
    ]
}
