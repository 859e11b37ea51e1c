//! Every code the exporter can report at severity fail has its own alert in the shipped rules
//! (deploy/prometheus/gpu-doctor.rules.yml), and the catch-all alert leaves exactly those out.

use crate::analyze::live::FAIL_CODES;

fn rules() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/gpu-doctor.rules.yml"
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_failing_code_has_an_alert_of_its_own() {
    let rules = rules();
    for code in FAIL_CODES {
        let own = format!("gpu_doctor_finding{{code=\"{code}\"");
        assert!(rules.contains(&own), "no alert on {code} in the rules");
    }
}

#[test]
fn the_catch_all_alert_excludes_exactly_the_codes_with_their_own() {
    let rules = rules();
    let line = rules
        .lines()
        .find(|l| l.contains("code!~\""))
        .expect("the catch-all alert");
    let list = line
        .split("code!~\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut excluded: Vec<&str> = list.split('|').collect();
    let mut fail: Vec<&str> = FAIL_CODES.to_vec();
    excluded.sort_unstable();
    fail.sort_unstable();
    assert_eq!(excluded, fail);
}
