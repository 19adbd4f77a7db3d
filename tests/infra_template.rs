//! The SAM template and the code cannot drift apart: the function's environment variables in
//! `infra/template.yaml` are exactly the ones the code reads for a deployment.

use std::collections::BTreeSet;

use registry_janitor::lambda::config::vars;
use serde_norway::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/infra/template.yaml"))
        .unwrap();
    // CloudFormation's short tags (!Ref, !Sub, !If...) come through as tagged values.
    serde_norway::from_str(&text).expect("template.yaml is YAML")
}

fn functions(t: &Value) -> Vec<&Value> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .collect()
}

#[test]
fn the_function_sets_exactly_the_variables_the_code_reads() {
    let t = template();
    let fns = functions(&t);
    assert_eq!(fns.len(), 1, "one function");
    let set: BTreeSet<String> = fns[0]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Environment.Variables")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = vars::DEPLOYED.iter().map(|s| s.to_string()).collect();
    assert_eq!(set, expected);
    for v in &vars::DEPLOYED {
        assert!(vars::ALL.contains(v));
    }
}

#[test]
fn the_function_is_arm64_on_provided_al2023_built_with_cargo_lambda() {
    let t = template();
    let f = functions(&t)[0];
    assert_eq!(f["Properties"]["Runtime"], "provided.al2023");
    assert_eq!(f["Properties"]["Architectures"][0], "arm64");
    assert_eq!(
        f["Metadata"]["BuildMethod"],
        Value::from("rust-cargolambda")
    );
}
