//! The benchmark drivers run as the harness runs them: the SQL worker answers statements on
//! stdin, and the lineage driver plans every transform of the example mesh.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_meshwork-bench");

#[test]
fn sql_worker_answers_each_statement_with_its_row_count_or_its_error() {
    let mut worker = Command::new(BENCH).arg("sql-worker").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = worker.stdin.take().unwrap();
    writeln!(stdin, r#"{{"sql": "SELECT * FROM generate_series(1, 5)"}}"#).unwrap();
    writeln!(stdin, r#"{{"sql": "SELECT * FROM missing_table"}}"#).unwrap();
    drop(stdin);
    let output = worker.wait_with_output().unwrap();
    assert!(output.status.success());
    let answers: Vec<Value> = String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The harness waits for `ready` before it starts the clock.
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0]["ready"], true, "{answers:?}");
    assert_eq!(answers[1]["rows"], 5, "{answers:?}");
    assert!(answers[1]["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{answers:?}");
    assert!(answers[2]["error"].as_str().is_some_and(|e| e.contains("missing_table")), "{answers:?}");
}

#[test]
fn lineage_driver_plans_every_transform_of_the_example_mesh() {
    let dir = tempfile::tempdir().unwrap();
    meshwork_example::write_example(dir.path(), &meshwork_example::ExampleOptions { orders: 500, seed: 42 }).unwrap();
    let output = Command::new(BENCH).args(["lineage", "--mesh"]).arg(dir.path()).args(["--runs", "2"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["products"], 7, "{report}");
    assert_eq!(report["transforms"], 5, "{report}");
    assert_eq!(report["runs"], 2, "{report}");
    let (min, median, max) = (report["min_ms"].as_f64().unwrap(), report["median_ms"].as_f64().unwrap(), report["max_ms"].as_f64().unwrap());
    assert!(min > 0.0 && min <= median && median <= max, "{report}");
}
