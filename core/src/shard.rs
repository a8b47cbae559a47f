//! `--shard env`: a batch task's share read from the engine that started it, so clearpaint is
//! one command inside the array jobs people already run. Every engine is 0-based here; Slurm's
//! task ids are turned into 0-based indices through its MIN and STEP.
//!
//! | engine | index | count |
//! |---|---|---|
//! | Slurm job array | `(SLURM_ARRAY_TASK_ID - _MIN) / _STEP` | `SLURM_ARRAY_TASK_COUNT` |
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` | `--shards N` (not exposed) |
//! | AWS Batch array job | `AWS_BATCH_JOB_ARRAY_INDEX` | `AWS_BATCH_JOB_ARRAY_SIZE` or `--shards` |
//! | Cloud Run jobs | `CLOUD_RUN_TASK_INDEX` | `CLOUD_RUN_TASK_COUNT` |
//! | Google Cloud Batch | `BATCH_TASK_INDEX` | `BATCH_TASK_COUNT` |

use crate::batch::Shard;

/// What `--shard` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`, 0-based.
    Explicit(Shard),
    /// From the scheduler's environment variables.
    Env,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "env" {
            return Ok(ShardSpec::Env);
        }
        s.parse().map(ShardSpec::Explicit)
    }
}

/// The engines `--shard env` knows, in the order they are looked for.
pub const ENGINES: [&str; 5] = [
    "Slurm",
    "Kubernetes",
    "AWS Batch",
    "Cloud Run",
    "Cloud Batch",
];

/// This task's shard from the environment (`var` reads a variable), and a note saying which
/// engine it came from. `shards` is `--shards N`: required where the engine does not expose
/// the count, checked against it where it does.
pub fn from_env(
    var: impl Fn(&str) -> Option<String>,
    shards: Option<u64>,
) -> Result<(Shard, String), String> {
    let num = |name: &str| -> Result<Option<u64>, String> {
        match var(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} is not a whole number")),
        }
    };
    let (engine, index, count) = if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let (index, count) = slurm(id, &num)?;
        ("Slurm", index, Some(count))
    } else if let Some(i) = num("JOB_COMPLETION_INDEX")? {
        ("Kubernetes", i, None)
    } else if let Some(i) = num("AWS_BATCH_JOB_ARRAY_INDEX")? {
        ("AWS Batch", i, num("AWS_BATCH_JOB_ARRAY_SIZE")?)
    } else if let Some(i) = num("CLOUD_RUN_TASK_INDEX")? {
        ("Cloud Run", i, num("CLOUD_RUN_TASK_COUNT")?)
    } else if let Some(i) = num("BATCH_TASK_INDEX")? {
        ("Cloud Batch", i, num("BATCH_TASK_COUNT")?)
    } else {
        return Err(format!(
            "--shard env: no array-job variables found (looked for {}: SLURM_ARRAY_TASK_ID, \
             JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX, CLOUD_RUN_TASK_INDEX, \
             BATCH_TASK_INDEX); pass --shard I/N instead",
            ENGINES.join(", ")
        ));
    };
    let count = match (count, shards) {
        (Some(c), Some(n)) if c != n => {
            return Err(format!(
                "--shards {n} disagrees with {engine}'s task count {c}"
            ));
        }
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => {
            return Err(format!(
                "--shard env: {engine} does not say how many tasks there are; pass --shards N \
                 (the job's parallelism / completions)"
            ));
        }
    };
    if count == 0 || index >= count {
        return Err(format!(
            "--shard env: {engine} task index {index} is outside 0..{count}"
        ));
    }
    let shard = Shard { index, count };
    Ok((shard, format!("shard {index}/{count} from {engine}")))
}

/// Slurm's 0-based index and count: task ids `MIN, MIN+STEP, ..., MAX`; an array with gaps
/// (`--array=1,4,9`) cannot be split evenly by index and is refused.
fn slurm(id: u64, num: &dyn Fn(&str) -> Result<Option<u64>, String>) -> Result<(u64, u64), String> {
    let need = |name: &str| -> Result<u64, String> {
        num(name)?
            .ok_or_else(|| format!("--shard env: SLURM_ARRAY_TASK_ID is set but {name} is not"))
    };
    let (count, min, max) = (
        need("SLURM_ARRAY_TASK_COUNT")?,
        need("SLURM_ARRAY_TASK_MIN")?,
        need("SLURM_ARRAY_TASK_MAX")?,
    );
    let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
    let contiguous =
        max >= min && (max - min).is_multiple_of(step) && (max - min) / step + 1 == count;
    if !contiguous || id < min || !(id - min).is_multiple_of(step) {
        return Err(format!(
            "--shard env: the Slurm array is not contiguous (ids {min}..={max} step {step}, \
             {count} tasks, this one {id}); submit it as --array=0-{} or pass --shard I/N",
            count.saturating_sub(1)
        ));
    }
    Ok(((id - min) / step, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn each_engine_gives_its_zero_based_index_and_count() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "10"),
            ("SLURM_ARRAY_TASK_STEP", "3"),
        ];
        let (s, note) = from_env(env(&slurm), None).unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        assert!(note.contains("Slurm"), "{note}");
        let k8s = [("JOB_COMPLETION_INDEX", "5")];
        assert!(from_env(env(&k8s), None).unwrap_err().contains("--shards"));
        assert_eq!(
            from_env(env(&k8s), Some(8)).unwrap().0,
            Shard { index: 5, count: 8 }
        );
        let aws = [
            ("AWS_BATCH_JOB_ARRAY_INDEX", "0"),
            ("AWS_BATCH_JOB_ARRAY_SIZE", "3"),
        ];
        assert_eq!(
            from_env(env(&aws), None).unwrap().0,
            Shard { index: 0, count: 3 }
        );
        assert!(
            from_env(env(&aws), Some(4))
                .unwrap_err()
                .contains("disagrees")
        );
        let run = [("CLOUD_RUN_TASK_INDEX", "2"), ("CLOUD_RUN_TASK_COUNT", "3")];
        assert_eq!(
            from_env(env(&run), None).unwrap().0,
            Shard { index: 2, count: 3 }
        );
        let batch = [("BATCH_TASK_INDEX", "1"), ("BATCH_TASK_COUNT", "2")];
        let (s, note) = from_env(env(&batch), None).unwrap();
        assert_eq!(s, Shard { index: 1, count: 2 });
        assert!(note.contains("Cloud Batch"));
    }

    #[test]
    fn gaps_bad_numbers_and_nothing_set_are_errors() {
        let gaps = [
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "9"),
        ];
        assert!(
            from_env(env(&gaps), None)
                .unwrap_err()
                .contains("not contiguous")
        );
        let bad = [("BATCH_TASK_INDEX", "x"), ("BATCH_TASK_COUNT", "2")];
        assert!(
            from_env(env(&bad), None)
                .unwrap_err()
                .contains("BATCH_TASK_INDEX")
        );
        let out = [("CLOUD_RUN_TASK_INDEX", "3"), ("CLOUD_RUN_TASK_COUNT", "3")];
        assert!(from_env(env(&out), None).unwrap_err().contains("outside"));
        assert!(
            from_env(env(&[]), None)
                .unwrap_err()
                .contains("no array-job variables")
        );
        assert_eq!("env".parse::<ShardSpec>(), Ok(ShardSpec::Env));
        assert!(matches!(
            "1/4".parse::<ShardSpec>(),
            Ok(ShardSpec::Explicit(_))
        ));
    }
}
