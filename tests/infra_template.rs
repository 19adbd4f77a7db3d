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

// ---------------------------------------------------------------------------------------------
// The work queue (SQS FIFO) and what watches it. CloudFormation's short tags come through
// serde_norway as `Value::Tagged`; these helpers read `!Ref X`, `!GetAtt X.Y` and the like.

fn resource<'t>(t: &'t Value, name: &str) -> &'t Value {
    let r = &t["Resources"][name];
    assert!(r.is_mapping(), "resource {name} is missing");
    r
}

fn resources_of_type<'t>(t: &'t Value, kind: &str) -> Vec<(String, &'t Value)> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect()
}

/// `!Tag value` as (tag without '!', value).
fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        _ => None,
    }
}

fn is_ref(v: &Value, name: &str) -> bool {
    matches!(tagged(v), Some((tag, inner)) if tag == "Ref" && inner == name) || v["Ref"] == name
}

/// `!GetAtt Resource.Attribute` (or the long form).
fn is_get_att(v: &Value, dotted: &str) -> bool {
    let parts = |inner: &Value| match inner {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(seq) => Some(
            seq.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    };
    match tagged(v) {
        Some((tag, inner)) if tag == "GetAtt" => parts(inner).as_deref() == Some(dotted),
        _ => parts(&v["Fn::GetAtt"]).as_deref() == Some(dotted),
    }
}

/// Every plain string inside a value, through tags, lists and maps.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Tagged(t) => strings(&t.value),
        Value::Sequence(seq) => seq.iter().flat_map(strings).collect(),
        Value::Mapping(m) => m.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// A `String` or a list of them, as a list.
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v.as_sequence() {
        Some(seq) => seq.iter().collect(),
        None => vec![v],
    }
}

fn function(t: &Value) -> &Value {
    functions(t)[0]
}

fn events_of_type<'t>(t: &'t Value, kind: &str) -> Vec<&'t Value> {
    function(t)["Properties"]["Events"]
        .as_mapping()
        .expect("Events")
        .values()
        .filter(|e| e["Type"] == kind)
        .collect()
}

#[test]
fn the_work_queue_and_its_dead_letter_queue_are_fifo_and_encrypted_with_the_stack_key() {
    let t = template();
    for name in ["WorkQueue", "WorkDeadLetterQueue"] {
        let q = resource(&t, name);
        assert_eq!(q["Type"], "AWS::SQS::Queue", "{name}");
        let p = &q["Properties"];
        assert_eq!(p["FifoQueue"], Value::Bool(true), "{name} is FIFO");
        assert!(
            is_ref(&p["KmsMasterKeyId"], "JanitorKey"),
            "{name} uses the stack key"
        );
    }
    // The code sets an explicit MessageDeduplicationId (it carries the schedule's id).
    assert_ne!(
        resource(&t, "WorkQueue")["Properties"]["ContentBasedDeduplication"],
        Value::Bool(true)
    );
    assert!(is_ref(
        &function(&t)["Properties"]["Environment"]["Variables"]["JANITOR_QUEUE_URL"],
        "WorkQueue"
    ));
}

#[test]
fn the_work_queue_redrives_to_the_dead_letter_queue_after_max_receive_count_deliveries() {
    let t = template();
    let redrive = &resource(&t, "WorkQueue")["Properties"]["RedrivePolicy"];
    assert!(is_get_att(
        &redrive["deadLetterTargetArn"],
        "WorkDeadLetterQueue.Arn"
    ));
    assert!(is_ref(&redrive["maxReceiveCount"], "MaxReceiveCount"));
    let param = &t["Parameters"]["MaxReceiveCount"];
    assert_eq!(param["Type"], "Number");
    assert!(param["MinValue"].as_u64().unwrap() >= 1);
    // The dead letters outlive the work queue's own retention (14 days, SQS's most).
    assert_eq!(
        resource(&t, "WorkDeadLetterQueue")["Properties"]["MessageRetentionPeriod"],
        Value::from(1_209_600)
    );
}

#[test]
fn the_visibility_timeout_is_at_least_six_times_every_allowed_function_timeout() {
    let t = template();
    assert!(is_ref(&function(&t)["Properties"]["Timeout"], "Timeout"));
    let visibility = &resource(&t, "WorkQueue")["Properties"]["VisibilityTimeout"];
    let (tag, args) = tagged(visibility).expect("VisibilityTimeout is !FindInMap");
    assert_eq!(tag, "FindInMap");
    let args = args.as_sequence().expect("FindInMap [map, key, attribute]");
    let (map, attribute) = (args[0].as_str().unwrap(), args[2].as_str().unwrap());
    assert!(
        is_ref(&args[1], "Timeout"),
        "keyed by the Timeout parameter"
    );
    let mapping = &t["Mappings"][map];
    let timeout = &t["Parameters"]["Timeout"];
    let allowed: Vec<u64> = timeout["AllowedValues"]
        .as_sequence()
        .expect("Timeout has AllowedValues: CloudFormation cannot multiply")
        .iter()
        .map(|v| v.as_u64().expect("a whole number of seconds"))
        .collect();
    assert!(!allowed.is_empty());
    assert!(allowed.contains(&timeout["Default"].as_u64().unwrap()));
    for seconds in allowed {
        let vt = mapping[seconds.to_string().as_str()][attribute]
            .as_u64()
            .unwrap_or_else(|| panic!("{map} has no {attribute} for Timeout {seconds}"));
        assert!(vt >= 6 * seconds, "Timeout {seconds}: visibility {vt} < 6x");
        assert!(vt <= 43_200, "SQS allows at most 12 hours, not {vt}");
        assert!(seconds <= 900, "Lambda allows at most 900 s");
    }
}

#[test]
fn the_queue_event_reports_batch_item_failures_and_caps_workers_at_maximum_concurrency() {
    let t = template();
    let sqs = events_of_type(&t, "SQS");
    assert_eq!(sqs.len(), 1, "one SQS event");
    let p = &sqs[0]["Properties"];
    assert!(is_get_att(&p["Queue"], "WorkQueue.Arn"));
    assert!(
        one_or_many(&p["FunctionResponseTypes"])
            .iter()
            .any(|v| *v == "ReportBatchItemFailures"),
        "without it one failed repository retries the whole batch"
    );
    assert!(is_ref(
        &p["ScalingConfig"]["MaximumConcurrency"],
        "MaximumConcurrency"
    ));
    assert!(
        p["BatchSize"].as_u64().unwrap() <= 10,
        "FIFO batches hold at most 10"
    );
    // The write budget is split as many ways as there can be workers.
    assert!(is_ref(
        &function(&t)["Properties"]["Environment"]["Variables"]["JANITOR_WRITE_SHARES"],
        "MaximumConcurrency"
    ));
    let param = &t["Parameters"]["MaximumConcurrency"];
    assert!(
        param["MinValue"].as_u64().unwrap() >= 2,
        "SQS's least MaximumConcurrency"
    );
    assert!(param["MaxValue"].as_u64().unwrap() <= 1000);
}

#[test]
fn every_alarm_notifies_a_topic() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    for name in ["DeadLetterAlarm", "OldestWorkAlarm", "FailedActionsAlarm"] {
        assert!(alarms.iter().any(|(n, _)| n == name), "{name} is missing");
    }
    for (name, alarm) in &alarms {
        let actions = alarm["Properties"]["AlarmActions"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no AlarmActions"));
        assert!(!actions.is_empty(), "{name} has no AlarmActions");
        for action in actions {
            let s = strings(action);
            assert!(
                s.iter().any(|x| x == "AlarmTopic") && s.iter().any(|x| x == "AlarmTopicArn"),
                "{name}: the stack's topic, or the one AlarmTopicArn names"
            );
        }
    }
}

#[test]
fn the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() {
    let t = template();
    assert!(is_ref(
        &resource(&t, "AlarmTopic")["Properties"]["KmsMasterKeyId"],
        "JanitorKey"
    ));
    let statements = resource(&t, "JanitorKey")["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap();
    let cloudwatch = statements
        .iter()
        .find(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com")
        .expect("the key policy lets CloudWatch alarms publish to the encrypted topic");
    let actions = one_or_many(&cloudwatch["Action"]);
    for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
        assert!(actions.iter().any(|a| **a == needed), "{needed}");
    }
}

#[test]
fn the_failed_actions_alarm_sums_the_function_errors_of_every_trigger() {
    let t = template();
    let metrics = resource(&t, "FailedActionsAlarm")["Properties"]["Metrics"]
        .as_sequence()
        .unwrap();
    let mut triggers: BTreeSet<String> = BTreeSet::new();
    for m in metrics {
        let metric = &m["MetricStat"]["Metric"];
        if metric.is_mapping() {
            assert_eq!(metric["Namespace"], "RegistryJanitor");
            assert_eq!(metric["MetricName"], "Errors");
            triggers.insert(
                metric["Dimensions"][0]["Value"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    let expected: BTreeSet<String> = ["schedule", "webhook", "direct", "queue"]
        .map(String::from)
        .into();
    assert_eq!(triggers, expected);
    let returned: Vec<_> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1, "one expression is alarmed on");
    let sum = returned[0]["Expression"].as_str().unwrap();
    for trigger in &expected {
        assert!(sum.contains(trigger.as_str()), "{sum} misses {trigger}");
    }
}

#[test]
fn the_role_can_send_to_and_drain_the_work_queue_and_nothing_broader() {
    let t = template();
    let mut statements: Vec<&Value> = Vec::new();
    for (_, role) in resources_of_type(&t, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            statements.extend(policy["PolicyDocument"]["Statement"].as_sequence().unwrap());
        }
    }
    for kind in ["AWS::IAM::RolePolicy", "AWS::IAM::Policy"] {
        for (_, policy) in resources_of_type(&t, kind) {
            statements.extend(
                policy["Properties"]["PolicyDocument"]["Statement"]
                    .as_sequence()
                    .unwrap(),
            );
        }
    }
    let narrow = [
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ];
    let mut on_work_queue: BTreeSet<String> = BTreeSet::new();
    for s in &statements {
        let actions: Vec<&str> = one_or_many(&s["Action"])
            .into_iter()
            .map(|a| a.as_str().expect("plain action names"))
            .collect();
        assert!(!actions.contains(&"*"), "a statement allows every action");
        let sqs: Vec<&str> = actions
            .into_iter()
            .filter(|a| a.starts_with("sqs:"))
            .collect();
        if sqs.is_empty() {
            continue;
        }
        assert_eq!(s["Effect"], "Allow");
        for a in &sqs {
            assert!(narrow.contains(a), "{a} is broader than the queue needs");
        }
        for r in one_or_many(&s["Resource"]) {
            assert!(
                !strings(r).iter().any(|x| x.contains('*')),
                "sqs on a wildcard resource"
            );
            if is_get_att(r, "WorkQueue.Arn") {
                on_work_queue.extend(sqs.iter().map(|a| a.to_string()));
            }
        }
    }
    let expected: BTreeSet<String> = narrow.map(String::from).into();
    assert_eq!(on_work_queue, expected);
}

#[test]
fn the_schedule_input_carries_the_scheduler_execution_id() {
    let t = template();
    let schedules = events_of_type(&t, "ScheduleV2");
    assert_eq!(schedules.len(), 1);
    let input = &schedules[0]["Properties"]["Input"];
    // Both branches of `!If [HasScheduleInput, ...]`, never AWS::NoValue.
    let (tag, branches) = tagged(input).expect("Input is !If");
    assert_eq!(tag, "If");
    let branches = &branches.as_sequence().unwrap()[1..];
    assert_eq!(branches.len(), 2);
    for branch in branches {
        assert!(
            !is_ref(branch, "AWS::NoValue"),
            "every schedule run carries an id"
        );
        let text = strings(branch).concat();
        let json = text.replace("${ScheduleInput}", r#"{"repositories":["ci/app"]}"#);
        let event: serde_json::Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("schedule input is not JSON ({e}): {json}"));
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["id"], "<aws.scheduler.execution-id>");
        assert!(event["detail"].is_object());
    }
}

#[test]
fn the_dashboard_is_json_and_charts_the_queue_and_dry_run_metrics() {
    let t = template();
    let body = strings(&resource(&t, "Dashboard")["Properties"]["DashboardBody"]).concat();
    // ${...} are CloudFormation substitutions; any string stands in for them here.
    let mut plain = String::new();
    let mut rest = body.as_str();
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap();
        plain.push('x');
        rest = &rest[start + end + 1..];
    }
    plain.push_str(rest);
    let dashboard: serde_json::Value = serde_json::from_str(&plain).expect("dashboard JSON");
    let charted: BTreeSet<String> = dashboard["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            w["properties"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m[1].as_str().map(str::to_owned))
        .collect();
    for metric in [
        "ManifestsDeleted",
        "BytesReclaimed",
        "RepositoriesQueued",
        "RepositoriesSwept",
        "RepositoriesFailed",
        "RepositoriesUnfinished",
        "ManifestsToDelete",
        "TagsToRemove",
        "BytesReclaimable",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "NumberOfMessagesDeleted",
    ] {
        assert!(charted.contains(metric), "{metric} is not on the dashboard");
    }
}

#[test]
fn ecr_access_is_the_five_calls_on_the_repository_pattern_and_only_with_one() {
    let t = template();
    let ecr = resource(&t, "FunctionEcrPolicy");
    assert_eq!(ecr["Condition"], "UseEcr");
    let statements = ecr["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    let mut actions = BTreeSet::new();
    for s in statements {
        for a in one_or_many(&s["Action"]) {
            let a = a.as_str().unwrap();
            assert!(a.starts_with("ecr:") && !a.contains('*'), "{a}");
            actions.insert(a.to_owned());
        }
        let resource = &s["Resource"];
        if one_or_many(&s["Action"]) == vec![&Value::from("ecr:DescribeRepositories")] {
            assert!(strings(resource)
                .iter()
                .any(|r| r.ends_with(":repository/*")));
        } else {
            assert!(is_ref(resource, "EcrRepositoryArnPattern"), "{resource:?}");
        }
    }
    let expected: BTreeSet<String> = [
        "ecr:BatchDeleteImage",
        "ecr:BatchGetImage",
        "ecr:DescribeImages",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
    ]
    .map(String::from)
    .into();
    assert_eq!(actions, expected);
    // Our reads are no pulls, and successful pushes invoke the function.
    let exclusion = resource(&t, "EcrPullTimeExclusion");
    assert_eq!(exclusion["Type"], "AWS::ECR::PullTimeUpdateExclusion");
    assert!(is_get_att(
        &exclusion["Properties"]["PrincipalArn"],
        "FunctionRole.Arn"
    ));
    let rule = resource(&t, "EcrPushRule");
    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(pattern["detail"]["action-type"][0], "PUSH");
    assert_eq!(pattern["detail"]["result"][0], "SUCCESS");
    assert!(is_get_att(
        &rule["Properties"]["Targets"][0]["Arn"],
        "JanitorFunction.Arn"
    ));
    // No secret needed: the secret's policy goes with it.
    assert_eq!(
        resource(&t, "FunctionSecretPolicy")["Condition"],
        "HasSecret"
    );
}

#[test]
fn the_in_use_lists_in_s3_are_the_only_objects_the_function_may_read() {
    let t = template();
    let policy = resource(&t, "FunctionInUsePolicy");
    assert_eq!(policy["Condition"], "ReadInUseObjects");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(strings(&statements[0]["Action"]), vec!["s3:GetObject"]);
    assert!(is_ref(&statements[0]["Resource"], "InUseObjectArns"));
    assert_eq!(t["Parameters"]["InUseObjectArns"]["Default"], "");
    // No other statement anywhere grants S3.
    for (name, p) in resources_of_type(&t, "AWS::IAM::RolePolicy") {
        if name == "FunctionInUsePolicy" {
            continue;
        }
        let doc = serde_norway::to_string(&p["Properties"]["PolicyDocument"]).unwrap();
        assert!(!doc.contains("s3:"), "{name} grants S3: {doc}");
    }
}

/// Every action a policy's statements grant, with the resources of each statement.
fn grants(policy: &Value) -> Vec<(Vec<String>, &Value)> {
    policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| (strings(&s["Action"]), &s["Resource"]))
        .collect()
}

#[test]
fn ecs_and_lambda_are_read_only_and_granted_only_when_their_parameters_ask() {
    let t = template();
    let ecs = resource(&t, "FunctionInUseEcsPolicy");
    assert_eq!(ecs["Condition"], "ReadInUseEcs");
    assert_eq!(t["Parameters"]["InUseEcsClusters"]["Default"], "");
    let mut actions = BTreeSet::new();
    for (granted, resource) in grants(ecs) {
        for a in &granted {
            let call = a.strip_prefix("ecs:").unwrap();
            assert!(
                call.starts_with("List") || call.starts_with("Describe"),
                "{a} is no read"
            );
            actions.insert(a.clone());
        }
        if granted.iter().any(|a| a.starts_with("ecs:DescribeTasks")) {
            // The Describe calls are held to the clusters the parameter names.
            let arns = serde_norway::to_string(resource).unwrap();
            for kind in ["service", "service-revision", "task"] {
                assert!(
                    arns.contains(&format!(":{kind}/${{InUseEcsClusters}}/*")),
                    "{arns}"
                );
            }
        }
    }
    let expected: BTreeSet<String> = [
        "ecs:DescribeServiceRevisions",
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:DescribeTasks",
        "ecs:ListClusters",
        "ecs:ListServices",
        "ecs:ListTasks",
    ]
    .map(String::from)
    .into();
    assert_eq!(actions, expected);

    let lambda = resource(&t, "FunctionInUseLambdaPolicy");
    assert_eq!(lambda["Condition"], "ReadInUseLambda");
    assert_eq!(t["Parameters"]["InUseLambda"]["Default"], "false");
    let actions: BTreeSet<String> = grants(lambda).into_iter().flat_map(|(a, _)| a).collect();
    let expected: BTreeSet<String> = [
        "lambda:GetFunction",
        "lambda:ListAliases",
        "lambda:ListFunctions",
    ]
    .map(String::from)
    .into();
    assert_eq!(actions, expected);
    // No other policy grants ECS or Lambda.
    for (name, p) in resources_of_type(&t, "AWS::IAM::RolePolicy") {
        if name == "FunctionInUseEcsPolicy" || name == "FunctionInUseLambdaPolicy" {
            continue;
        }
        let doc = serde_norway::to_string(&p["Properties"]["PolicyDocument"]).unwrap();
        assert!(!doc.contains("ecs:"), "{name} grants ECS: {doc}");
        assert!(
            !doc.contains("lambda:List") && !doc.contains("lambda:GetFunction"),
            "{name}: {doc}"
        );
    }
    let conditions = serde_norway::to_string(&t["Conditions"]).unwrap();
    assert!(conditions.contains("InUseEcsClusters") && conditions.contains("InUseLambda"));
}

#[test]
fn a_held_repository_raises_its_own_alarm_over_every_trigger() {
    let t = template();
    let alarm = resource(&t, "RepositoriesHeldAlarm");
    let metrics = alarm["Properties"]["Metrics"].as_sequence().unwrap();
    let mut triggers = BTreeSet::new();
    for m in metrics {
        if let Some(stat) = m.get("MetricStat") {
            assert_eq!(stat["Metric"]["MetricName"], "RepositoriesHeld");
            assert_eq!(stat["Metric"]["Namespace"], "RegistryJanitor");
            triggers.insert(
                stat["Metric"]["Dimensions"][0]["Value"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    let all: BTreeSet<String> = ["direct", "queue", "schedule", "webhook"]
        .map(String::from)
        .into();
    assert_eq!(triggers, all);
    assert_eq!(alarm["Properties"]["Threshold"], 0);
    assert_eq!(
        alarm["Properties"]["ComparisonOperator"],
        "GreaterThanThreshold"
    );
    // And the dashboard charts it.
    let body = strings(&resource(&t, "Dashboard")["Properties"]["DashboardBody"]).concat();
    let body = body.replace("${AWS::Region}", "eu-west-1");
    let dashboard: serde_json::Value = serde_json::from_str(&body).expect("dashboard JSON");
    let held = dashboard["widgets"].as_array().unwrap().iter().any(|w| {
        w["properties"]["metrics"]
            .as_array()
            .is_some_and(|m| m.iter().any(|row| row[1] == "RepositoriesHeld"))
    });
    assert!(held, "RepositoriesHeld is not on the dashboard");
}
