//! The credentials people already have, end to end through the CLI against a real
//! `htpasswd` registry: docker's `credHelpers` and `credsStore` (a `docker-credential-…`
//! script on a temporary `PATH`), `auths`, and the order flags > environment > docker's
//! config. No secret may appear in what a run prints.

mod support;

use std::path::PathBuf;

use base64::Engine as _;
use support::janitor::{Janitor, Outcome};
use support::registry::RegistryAuth;
use support::{Image, TestRegistry};

const USER: &str = "alice";
const PASSWORD: &str = "correct-horse-7c1f";
const WRONG: &str = "wrong-battery-93ad";
const POLICY: &str = r#"{"rules":[{"name":"u","select":"untagged"}]}"#;

/// A registry that wants `USER`/`PASSWORD`, with `repositories` each holding a tagged image.
async fn basic_registry(repositories: &[&str]) -> TestRegistry {
    let registry = TestRegistry::start_with(RegistryAuth::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    })
    .await;
    for r in repositories {
        Image::oci(r).tag("v1").push(&registry).await;
    }
    registry
}

/// A folder on `PATH` for credential helpers, and the janitor that sees it.
struct Helpers {
    bin: PathBuf,
}

impl Helpers {
    fn new(janitor: &Janitor) -> Helpers {
        let bin = janitor.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        Helpers { bin }
    }

    /// `PATH` with the helpers first.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `docker-credential-<name>`: a shell script. It counts its runs in `<bin>/<name>.runs`.
    fn add(&self, name: &str, script: &str) {
        let path = self.bin.join(format!("docker-credential-{name}"));
        let runs = self.bin.join(format!("{name}.runs"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho run >> '{}'\n[ \"$1\" = get ] || exit 9\n{script}\n",
                runs.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A helper that answers `secret` for `host` only, as docker's helpers do.
    fn answering(&self, name: &str, host: &str, secret: &str) {
        self.add(
            name,
            &format!(
                "host=$(cat)\nif [ \"$host\" = '{host}' ]; then\n  echo '{{\"ServerURL\":\"{host}\",\"Username\":\"{USER}\",\"Secret\":\"{secret}\"}}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi"
            ),
        );
    }

    fn runs(&self, name: &str) -> usize {
        std::fs::read_to_string(self.bin.join(format!("{name}.runs")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// Docker's config for the janitor's `HOME`.
fn docker_config(janitor: &Janitor, json: &str) {
    let dir = janitor.dir.path().join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), json).unwrap();
}

fn basic_auth(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// The janitor for `registry`, with `PATH` from `helpers`.
fn janitor_with_helpers(registry: &TestRegistry) -> (Janitor, Helpers) {
    let janitor = Janitor::new(registry);
    let helpers = Helpers::new(&janitor);
    let janitor = janitor.with_env("PATH", &helpers.path());
    (janitor, helpers)
}

/// `plan --no-state --format json` with `extra`.
async fn plan(janitor: &Janitor, extra: &[&str]) -> Outcome {
    let mut args = vec!["--no-state"];
    args.extend_from_slice(extra);
    janitor.plan(POLICY, &args).await
}

/// Whether every repository in the report was read whole.
fn all_complete(out: &Outcome) -> bool {
    let json = out.json();
    let repositories = json["repositories"].as_array().unwrap();
    !repositories.is_empty() && repositories.iter().all(|r| r["complete"] == true)
}

fn assert_no_secret(out: &Outcome) {
    let encoded = [basic_auth(USER, PASSWORD), basic_auth(USER, WRONG)];
    for secret in [PASSWORD, WRONG, "SECRET-LEAK", &encoded[0], &encoded[1]] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} in the output:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[tokio::test]
async fn a_helper_named_by_creds_store_opens_a_basic_auth_registry() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.answering("store", &registry.host(), PASSWORD);
    docker_config(&janitor, r#"{"credsStore":"store"}"#);

    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out), "{}", out.stdout);
    assert_eq!(helpers.runs("store"), 1);
    assert_no_secret(&out);
}

#[tokio::test]
async fn cred_helpers_for_the_host_come_before_creds_store_and_auths() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    let host = registry.host();
    helpers.answering("good", &host, PASSWORD);
    helpers.answering("bad", &host, WRONG);
    helpers.answering("elsewhere", "other.example", WRONG);
    // The key as docker login writes some: a URL with a trailing slash.
    docker_config(
        &janitor,
        &format!(
            r#"{{"credsStore":"bad","credHelpers":{{"other.example":"elsewhere","https://{host}/":"good"}},"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            basic_auth(USER, WRONG)
        ),
    );

    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out));
    assert_eq!(
        (
            helpers.runs("good"),
            helpers.runs("bad"),
            helpers.runs("elsewhere")
        ),
        (1, 0, 0)
    );

    // Without a helper, `auths` holds them.
    docker_config(
        &janitor,
        &format!(
            r#"{{"auths":{{"http://{host}":{{"auth":"{}"}}}}}}"#,
            basic_auth(USER, PASSWORD)
        ),
    );
    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(all_complete(&out));
}

#[tokio::test]
async fn flags_come_before_the_environment_and_the_environment_before_docker_config() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.answering("store", &registry.host(), PASSWORD);
    docker_config(&janitor, r#"{"credsStore":"store"}"#);
    let janitor = janitor
        .with_env("REGISTRY_USERNAME", USER)
        .with_env("REGISTRY_PASSWORD", WRONG);

    // The environment wins over docker's config: refused, and the helper never ran.
    let out = plan(&janitor, &["--repository", "app"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(!all_complete(&out));
    assert!(
        out.stdout.contains("refused the credentials"),
        "{}",
        out.stdout
    );
    assert_eq!(helpers.runs("store"), 0);
    assert_no_secret(&out);

    // Flags win over the environment.
    let out = plan(&janitor, &["--username", USER, "--password", PASSWORD]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out));
    assert_eq!(helpers.runs("store"), 0);
}

#[tokio::test]
async fn a_missing_helper_is_a_clear_error() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, _helpers) = janitor_with_helpers(&registry);
    docker_config(&janitor, r#"{"credsStore":"not-installed-here"}"#);

    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("docker-credential-not-installed-here")
            && out.stderr.contains("not found on PATH"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[tokio::test]
async fn a_failing_helper_is_a_clear_error_that_never_shows_what_it_printed() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.add(
        "broken",
        "echo 'SECRET-LEAK on stderr' >&2\necho 'SECRET-LEAK on stdout'\nexit 3",
    );
    docker_config(&janitor, r#"{"credsStore":"broken"}"#);

    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("docker-credential-broken") && out.stderr.contains("failed"),
        "{}",
        out.stderr
    );
    assert_no_secret(&out);
}

#[tokio::test]
async fn a_helper_that_hangs_is_stopped_at_its_timeout() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.add("hangs", "exec sleep 30");
    docker_config(&janitor, r#"{"credsStore":"hangs"}"#);
    let janitor = janitor.with_env("JANITOR_CREDENTIAL_HELPER_TIMEOUT", "1s");

    let started = std::time::Instant::now();
    let out = plan(&janitor, &[]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("docker-credential-hangs") && out.stderr.contains("within 1s"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_helper_that_leaves_its_output_open_is_stopped_at_its_timeout_too() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    // It answers, exits, and leaves a child holding its stdout.
    helpers.add(
        "lingers",
        &format!("(sleep 20 &)\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'"),
    );
    docker_config(&janitor, r#"{"credsStore":"lingers"}"#);
    let janitor = janitor.with_env("JANITOR_CREDENTIAL_HELPER_TIMEOUT", "1s");

    let started = std::time::Instant::now();
    let out = plan(&janitor, &[]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("within 1s"), "{}", out.stderr);
}

#[tokio::test]
async fn a_bad_helper_timeout_is_an_error_that_says_so() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.answering("store", &registry.host(), PASSWORD);
    docker_config(&janitor, r#"{"credsStore":"store"}"#);
    let janitor = janitor.with_env("JANITOR_CREDENTIAL_HELPER_TIMEOUT", "soon");
    let policy = janitor.policy(POLICY);
    let out = janitor
        .op(
            &["plan"],
            &["--policy", policy.to_str().unwrap(), "--no-state"],
        )
        .await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("JANITOR_CREDENTIAL_HELPER_TIMEOUT") && out.stderr.contains("soon"),
        "{}",
        out.stderr
    );
    assert_eq!(helpers.runs("store"), 0);
}

#[tokio::test]
async fn credentials_not_found_by_the_helper_mean_anonymous() {
    let registry = TestRegistry::start().await;
    Image::oci("app").tag("v1").push(&registry).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.answering("store", "other.example", PASSWORD);
    docker_config(&janitor, r#"{"credsStore":"store"}"#);
    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out));
    assert_eq!(helpers.runs("store"), 1);
}

#[tokio::test]
async fn a_helper_that_does_not_read_its_input_is_still_heard() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.add(
        "deaf",
        &format!("echo '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'"),
    );
    docker_config(&janitor, r#"{"credsStore":"deaf"}"#);
    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out));
}

#[tokio::test]
async fn an_identity_token_is_never_sent_as_a_password() {
    let registry = basic_registry(&["app"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.add(
        "tokens",
        "echo '{\"Username\":\"<token>\",\"Secret\":\"SECRET-LEAK-refresh\"}'",
    );
    docker_config(&janitor, r#"{"credsStore":"tokens"}"#);
    let out = plan(&janitor, &["--repository", "app"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("wants a password") && out.stdout.contains("identity token"),
        "{}",
        out.stdout
    );
    assert_no_secret(&out);
}

/// A helper whose answer changes: the first run hands out `WRONG` (a password rotated
/// since), later runs `PASSWORD`.
fn rotating(helpers: &Helpers, name: &str, host: &str) {
    let runs = helpers.bin.join(format!("{name}.runs"));
    helpers.add(
        name,
        &format!(
            "cat > /dev/null\nif [ \"$(wc -l < '{}')\" -le 1 ]; then s='{WRONG}'; else s='{PASSWORD}'; fi\necho \"{{\\\"ServerURL\\\":\\\"{host}\\\",\\\"Username\\\":\\\"{USER}\\\",\\\"Secret\\\":\\\"$s\\\"}}\"",
            runs.display()
        ),
    );
}

#[tokio::test]
async fn a_refused_password_is_asked_for_again_and_the_run_carries_on() {
    let registry = basic_registry(&["a", "b"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    rotating(&helpers, "rotating", &registry.host());
    docker_config(&janitor, r#"{"credsStore":"rotating"}"#);

    let out = plan(&janitor, &["--concurrency", "1"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out), "{}", out.stdout);
    assert_eq!(out.json()["repositories"].as_array().unwrap().len(), 2);
    assert_eq!(
        helpers.runs("rotating"),
        2,
        "asked once at the start, once again"
    );
    assert_no_secret(&out);
}

#[tokio::test]
async fn credentials_refused_again_leave_the_repositories_not_started_unfinished() {
    let registry = basic_registry(&["a", "b", "c"]).await;
    let (janitor, helpers) = janitor_with_helpers(&registry);
    helpers.answering("stale", &registry.host(), WRONG);
    docker_config(&janitor, r#"{"credsStore":"stale"}"#);
    // Every log line there is, so that a secret in any of them shows.
    let janitor = janitor.with_env("JANITOR_LOG", "trace");

    let out = plan(
        &janitor,
        &[
            "--concurrency",
            "1",
            "--repository",
            "a",
            "--repository",
            "b",
            "--repository",
            "c",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    let repositories = json["repositories"].as_array().unwrap();
    assert_eq!(repositories.len(), 1, "{}", out.stdout);
    assert_eq!(repositories[0]["name"], "a");
    assert_eq!(repositories[0]["complete"], false);
    assert!(repositories[0]["error"]
        .as_str()
        .unwrap()
        .contains("refused the credentials"));
    assert_eq!(json["unfinished"], serde_json::json!(["b", "c"]));
    assert_eq!(json["summary"]["repositories_unfinished"], 2);
    assert_eq!(helpers.runs("stale"), 2, "asked once more, then no more");
    assert_no_secret(&out);
}

#[tokio::test]
async fn auths_auth_works_exactly_as_before() {
    let registry = basic_registry(&["app"]).await;
    let janitor = Janitor::new(&registry);
    docker_config(
        &janitor,
        &format!(
            r#"{{"auths":{{"https://{}/v1/":{{"auth":"{}"}}}}}}"#,
            registry.host(),
            basic_auth(USER, PASSWORD)
        ),
    );
    let out = plan(&janitor, &[]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(all_complete(&out));
}
