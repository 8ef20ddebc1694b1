//! `run --format junit`: one JUnit test case per scenario, so CI systems show the catalog as
//! tests. A case fails when its expectation is not met or the system failed; the failure
//! carries the reason, the reports written and the command that reproduces it.

use crate::report::{escape_xml, repro_command};
use crate::run::Verdict;
use crate::scenario::{Outcome, Scenario};

/// One scenario's result, as a test case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub path: String,
    pub met: bool,
    /// One line: the verdict as the human output says it.
    pub summary: String,
    pub failure: Option<String>,
    pub wall_ms: u128,
}

impl Case {
    pub fn new(s: &Scenario, v: &Verdict, reports: &[(u64, String)], swarm: bool, wall_ms: u128) -> Case {
        let summary = format!("expect {}: {} seeds, {} with anomalies: {}", s.expect.outcome.name(), v.seeds, v.seeds_with_anomalies, v.reason);
        let failure = (!v.met).then(|| {
            let mut text = summary.clone();
            if !v.failures.is_empty() {
                text += &format!("\nsystem failure in seed(s) {:?}", v.failures);
            }
            for (seed, at) in reports {
                text += &format!("\nreport for seed {seed}: {at}");
            }
            let seed = v.failures.first().or(if s.expect.outcome == Outcome::Clean { v.notable_seeds.first() } else { None });
            text += &match seed {
                Some(seed) => format!("\nrepro: {}", repro_command(&s.path, *seed, swarm)),
                None => format!("\nrepro: cargo run --release -- run {} --seeds {}{}", s.path, v.seeds, if swarm { " --swarm" } else { "" }),
            };
            text
        });
        Case { name: s.name.clone(), path: s.path.clone(), met: v.met, summary, failure, wall_ms }
    }
}

/// The whole document: one suite, one case per scenario.
pub fn document(cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| !c.met).count();
    let total_ms: u128 = cases.iter().map(|c| c.wall_ms).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out += &format!("<testsuites name=\"stormlog\" tests=\"{}\" failures=\"{failures}\" time=\"{}\">\n", cases.len(), seconds(total_ms));
    out += &format!("  <testsuite name=\"stormlog scenarios\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{}\">\n", cases.len(), seconds(total_ms));
    for c in cases {
        out += &format!("    <testcase classname=\"{}\" name=\"{}\" time=\"{}\">\n", escape_xml(&c.path), escape_xml(&c.name), seconds(c.wall_ms));
        if let Some(f) = &c.failure {
            out += &format!("      <failure message=\"{}\" type=\"expectation-not-met\">{}</failure>\n", escape_xml(&c.summary), escape_xml(f));
        }
        out += &format!("      <system-out>{}</system-out>\n", escape_xml(&c.summary));
        out += "    </testcase>\n";
    }
    out += "  </testsuite>\n</testsuites>\n";
    out
}

fn seconds(ms: u128) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_case_carries_its_repro_command_and_text_is_escaped() {
        let ok = Case { name: "a".into(), path: "scenarios/a.toml".into(), met: true, summary: "fine".into(), failure: None, wall_ms: 1500 };
        let bad = Case { failure: Some("x < y\nrepro: cargo run --release -- repro scenarios/b.toml --seed 3".into()), met: false, name: "b".into(), ..ok.clone() };
        let xml = document(&[ok, bad]);
        assert!(xml.contains("<testsuites name=\"stormlog\" tests=\"2\" failures=\"1\" time=\"3.000\">"), "{xml}");
        assert!(xml.contains("<testcase classname=\"scenarios/a.toml\" name=\"a\" time=\"1.500\">"), "{xml}");
        assert!(xml.contains("x &lt; y\nrepro: cargo run --release -- repro scenarios/b.toml --seed 3</failure>"), "{xml}");
        assert_eq!(xml.matches("<failure").count(), 1);
    }
}
