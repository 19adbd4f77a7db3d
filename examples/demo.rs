//! `make demo`: a local registry seeded with a small, realistic mess, then a plan and an
//! apply, so you can see what registry-janitor does before you point it at anything real.
//!
//! It starts Debian's docker-registry on a free loopback port (the same harness the tests
//! use), pushes images the way a CI system would, and runs the real binary.

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::{Duration, Utc};
use support::images::COSIGN_SIGNATURE;
use support::janitor::Janitor;
use support::{Image, TestRegistry};

/// A heading, in bold on a terminal only (and never with NO_COLOR set).
fn heading(text: &str) {
    use std::io::IsTerminal;
    let bold = registry_janitor::report::colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    if bold {
        println!("\n\x1b[1m== {text}\x1b[0m");
    } else {
        println!("\n== {text}");
    }
}

#[tokio::main]
async fn main() {
    let registry = TestRegistry::start().await;
    let now = Utc::now();
    let ago = |days: i64| (now - Duration::days(days)).to_rfc3339();
    heading(&format!(
        "A registry at {}, seeded like a busy CI would leave it",
        registry.url
    ));

    // A multi-arch release with a signature, and the previous release.
    let amd = Image::oci("web/frontend")
        .platform("linux", "amd64")
        .created(&ago(3))
        .push(&registry)
        .await;
    let arm = Image::oci("web/frontend")
        .platform("linux", "arm64")
        .created(&ago(3))
        .push(&registry)
        .await;
    let release = registry
        .index("web/frontend", &[&amd, &arm], &["latest", "v1.4.2"])
        .await;
    registry.cosign_signature(&release).await;
    let old_amd = Image::oci("web/frontend")
        .platform("linux", "amd64")
        .created(&ago(70))
        .push(&registry)
        .await;
    let old_arm = Image::oci("web/frontend")
        .platform("linux", "arm64")
        .created(&ago(70))
        .push(&registry)
        .await;
    registry
        .index("web/frontend", &[&old_amd, &old_arm], &["v1.3.0"])
        .await;

    // Pull-request builds over three months, some signed, one with an SBOM, one promoted.
    for (pr, days) in [
        (101, 90),
        (102, 75),
        (103, 60),
        (104, 45),
        (105, 35),
        (106, 20),
        (107, 6),
        (108, 1),
    ] {
        let mut image = Image::docker("ci/app")
            .created(&ago(days))
            .tag(&format!("pr-{pr}"));
        if pr == 105 {
            image = image.tag("stable");
        }
        let pushed = image.push(&registry).await;
        if pr % 2 == 1 {
            registry.cosign_signature(&pushed).await;
        }
        if pr == 102 {
            Image::oci("ci/app")
                .referrer_of(&pushed, "application/spdx+json")
                .push(&registry)
                .await;
        }
    }
    let main = Image::docker("ci/app")
        .created(&ago(0))
        .tag("main")
        .push(&registry)
        .await;
    let nightly = Image::oci("ci/app")
        .created(&ago(2))
        .tag("nightly")
        .push(&registry)
        .await;
    println!("web/frontend: latest = v1.4.2 (amd64 + arm64, signed), v1.3.0");
    println!("ci/app: pr-101..pr-108 over 90 days (odd ones signed, pr-102 with an SBOM), stable = pr-105, main, nightly");
    let _ = (main, nightly, COSIGN_SIGNATURE);

    let janitor = Janitor::new(&registry);
    let policy_text =
        std::fs::read_to_string("examples/demo-policy.json").expect("examples/demo-policy.json");
    let policy = janitor.policy(&policy_text);
    let state = janitor.state();
    let run = |args: Vec<String>| {
        let janitor = &janitor;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = janitor.run(&args).await;
            print!("{}", out.stdout);
            if out.code != 0 {
                eprintln!("{}", out.stderr);
                panic!("registry-janitor exited with {}", out.code);
            }
        }
    };
    let base = |cmd: &str| {
        vec![
            cmd.to_owned(),
            "--registry".into(),
            registry.url.clone(),
            "--policy".into(),
            policy.display().to_string(),
            "--state".into(),
            state.display().to_string(),
        ]
    };

    heading("The policy (examples/demo-policy.json)");
    print!("{policy_text}");

    heading("registry-janitor plan: the first sweep remembers every manifest it sees");
    run(base("plan")).await;

    heading("Two more nightly builds push over `nightly`. The first is now untagged; the middle one was");
    println!(
        "never seen by a sweep (a push webhook would have recorded it), so it stays invisible."
    );
    for days in [1, 0] {
        Image::oci("ci/app")
            .created(&ago(days))
            .tag("nightly")
            .push(&registry)
            .await;
    }
    let mut plan = base("plan");
    plan.extend(["--repository".into(), "ci/app".into()]);
    run(plan).await;

    heading("Two days later: registry-janitor apply --yes");
    let mut apply = base("apply");
    apply.extend([
        "--yes".into(),
        "--now".into(),
        (now + Duration::days(2)).to_rfc3339(),
    ]);
    run(apply).await;

    heading("What is left still pulls completely");
    for (repo, tags) in [
        ("web/frontend", registry.tags("web/frontend").await),
        ("ci/app", registry.tags("ci/app").await),
    ] {
        for tag in &tags {
            registry.assert_pulls_completely(repo, tag).await;
        }
        println!("{repo}: {}", tags.join(", "));
    }
    println!(
        "\nThe registry stops when this program ends. Run `registry-janitor --help` for more."
    );
}
