//! The binary's contract: exit codes and messages for bad input.

use std::process::Command;

fn stormlog(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stormlog")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn write_temp(name: &str, body: &str) -> String {
    let dir = std::env::temp_dir().join(format!("stormlog-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn a_bad_scenario_exits_1_naming_file_key_and_expectation() {
    let path = write_temp("bad.toml", "name = \"x\"\nduration_ms = \"sixty\"\n[expect]\noutcome = \"clean\"\n[cluster]\nbrokers = 1\n");
    let (code, text) = stormlog(&["run", &path]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&path) && text.contains("duration_ms") && text.contains("expected"), "{text}");
}

#[test]
fn an_unsupported_key_fails_loudly_instead_of_being_ignored() {
    let body = "name = \"x\"\nduration_ms = 1000\n[expect]\noutcome = \"clean\"\n[cluster]\nbrokers = 1\n[nemesis]\nkinds = [\"skew\"]\n";
    let path = write_temp("nemesis.toml", body);
    let (code, text) = stormlog(&["run", &path]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("nemesis.kinds") && text.contains("not supported yet") && text.contains("skew"), "{text}");
}

#[test]
fn a_missing_file_exits_1() {
    let (code, text) = stormlog(&["run", "no/such/scenario.toml"]);
    assert_eq!(code, 1, "{text}");
}

#[test]
fn list_shows_the_catalog() {
    let (code, text) = stormlog(&["list", "../scenarios"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("smoke") && text.contains("clean"), "{text}");
}

#[test]
fn a_usage_error_is_bad_input_exit_1_not_2() {
    let (code, text) = stormlog(&["run", "../scenarios/smoke.toml", "--shard", "4/3"]);
    assert_eq!(code, 1, "{text}");
    let (code, _) = stormlog(&["frobnicate"]);
    assert_eq!(code, 1);
    let (code, text) = stormlog(&["--help"]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn shards_split_the_seeds_without_overlap() {
    let seeds = |k: u32| -> Vec<String> {
        let (code, text) = stormlog(&["run", "../scenarios/smoke.toml", "--seeds", "5", "--shard", &format!("{k}/2"), "--format", "json"]);
        assert_eq!(code, 0, "{text}");
        text.lines().filter(|l| !l.contains("\"summary\"")).filter_map(|l| l.split("\"seed\":").nth(1)).map(|r| r.split(',').next().unwrap().to_string()).collect()
    };
    assert_eq!(seeds(1), ["0", "2", "4"]);
    assert_eq!(seeds(2), ["1", "3"]);
}

#[test]
fn swarm_runs_print_each_seeds_draw_and_replay_it() {
    let (code, text) = stormlog(&["run", "../scenarios/smoke.toml", "--seeds", "2", "--swarm"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("[swarm kinds=").count(), 2, "{text}");
    let (code, text) = stormlog(&["repro", "../scenarios/smoke.toml", "--seed", "1", "--swarm", "--report-dir", &std::env::temp_dir().display().to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("swarm kinds=") && text.contains("--seed 1 --swarm"), "{text}");
}

#[test]
fn bench_reports_an_engine_it_lacks_as_not_built_rather_than_guessing() {
    let (code, text) = stormlog(&["bench", "--engine", "madsim", "--format", "json"]);
    assert_eq!(code, 0, "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["engines"][0]["engine"], "madsim");
    assert_eq!(report["engines"][0]["status"], "not built yet");
    assert_eq!(report["scenario"]["name"], "bench_standard");
    assert!(report["definitions"]["events"].as_str().unwrap().contains("trace"));
}

#[test]
fn a_bench_variant_with_fewer_brokers_than_replicas_is_bad_input() {
    let (code, text) = stormlog(&["bench-seed", "--seed", "0", "--brokers", "2"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("replication_factor"), "{text}");
}

#[test]
fn junit_has_one_case_per_scenario_and_a_failure_carries_the_repro_command() {
    let text = std::fs::read_to_string("../scenarios/acks1_leader_crash_before_replication_loses_acknowledged_writes.toml").unwrap();
    let wrong = text.replace("outcome = \"violation\"\nanomalies = [\"lost-write\"]", "outcome = \"clean\"").replace("name = \"acks1_leader", "name = \"expects_clean_acks1_leader");
    let path = write_temp("expects_clean.toml", &wrong);
    let reports = std::env::temp_dir().join(format!("stormlog-junit-{}", std::process::id()));
    let (code, xml) = stormlog(&["run", "../scenarios/smoke.toml", &path, "--seeds", "1", "--format", "junit", "--report-dir", &reports.display().to_string()]);
    assert_eq!(code, 2, "{xml}");
    assert!(xml.starts_with("<?xml"), "junit output must be XML only: {xml}");
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    let failure = xml.split("<failure ").nth(1).unwrap();
    assert!(failure.contains(&format!("repro: cargo run --release -- repro {path} --seed 0")), "{failure}");
    assert!(failure.contains("report for seed 0:"), "{failure}");
}

#[test]
fn shrink_writes_a_scenario_with_an_explicit_schedule_and_says_how_much_smaller() {
    let out = std::env::temp_dir().join(format!("stormlog-shrunk-{}.toml", std::process::id()));
    let (code, text) = stormlog(&["shrink", "../scenarios/unclean_election_loses_committed_data.toml", "--seed", "0", "-o", &out.display().to_string(), "--runs-max", "6"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("smaller: faults 2 -> ") && text.contains("messages sent "), "{text}");
    assert!(text.contains(&format!("repro: cargo run --release -- repro {} --seed 0", out.display())), "{text}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("# Written by `stormlog shrink"), "{written}");
    assert!(written.contains("[[faults]]") && !written.contains("[nemesis]"), "{written}");
    let (code, text) = stormlog(&["repro", &out.display().to_string(), "--seed", "0", "--report-dir", &std::env::temp_dir().display().to_string()]);
    assert_eq!(code, 0, "the shrunk scenario must still fail the same way: {text}");
}

#[test]
fn a_run_that_never_reaches_an_expected_mark_does_not_meet_its_expectation() {
    let smoke = std::fs::read_to_string("../scenarios/smoke.toml").unwrap();
    let never = smoke.replace("marks = [\"isr_shrunk\", \"isr_expanded\"]", "marks = [\"isr_shrunk\", \"unclean_election\"]");
    assert_ne!(never, smoke, "smoke.toml expects its marks");
    let path = write_temp("never_unclean.toml", &never);
    let reports = std::env::temp_dir().join(format!("stormlog-marks-{}", std::process::id()));
    let (code, text) = stormlog(&["run", &path, "--seeds", "1", "--report-dir", &reports.display().to_string()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no seed reached the marks [\"unclean_election\"]"), "{text}");
    let (code, json) = stormlog(&["run", "../scenarios/smoke.toml", "--seeds", "1", "--format", "json"]);
    assert_eq!(code, 0, "{json}");
    let seed: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!(seed["marks"].as_array().unwrap().iter().any(|m| m == "isr_shrunk"), "{json}");
}
