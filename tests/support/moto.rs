//! A `moto` server on loopback: the real AWS APIs the function calls (Secrets Manager,
//! DynamoDB), reached through the real AWS SDK with an endpoint override.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub async fn start() -> Moto {
        Moto::start_with(&[]).await
    }

    /// A server with these settings in its environment (`MOTO_LAMBDA_STUB_ECR=false`: Lambda
    /// resolves an image function's tag in moto's ECR, as Lambda does in ECR).
    pub async fn start_with(env: &[(&str, &str)]) -> Moto {
        super::init();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server: {e}; `pip install 'moto[server]'` (.ci/run does)")
            });
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            if http
                .get(format!("{}/moto-api/", moto.url))
                .send()
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {}", moto.url);
    }

    /// Environment for a process that should talk to this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.url.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// An SDK configuration for the test itself.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(registry_janitor::lambda::aws_http_client())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }

    /// Create the inventory table as the template does: `pk` + `digest`, TTL on `expires_at`.
    pub async fn create_inventory_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let client = aws_sdk_dynamodb::Client::new(&self.sdk().await);
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .unwrap()
        };
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("digest"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("digest", KeyType::Range))
            .send()
            .await
            .expect("create table");
    }

    /// An S3 object, in a bucket made for it if need be (path-style, as the janitor asks
    /// when `AWS_ENDPOINT_URL` is set).
    pub async fn put_object(&self, bucket: &str, key: &str, body: &str) {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk().await)
                .force_path_style(true)
                .build(),
        );
        let _ = s3.create_bucket().bucket(bucket).send().await;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put the object");
    }

    /// A role Lambda can assume: moto checks that a function's role exists in its IAM.
    pub async fn lambda_role(&self) -> String {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let response = reqwest::Client::new()
            .post(&self.url)
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("Action", "CreateRole"),
                        ("Version", "2010-05-08"),
                        ("RoleName", "function"),
                        ("AssumeRolePolicyDocument", trust),
                    ])
                    .finish(),
            )
            .send()
            .await
            .expect("create role");
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
        "arn:aws:iam::123456789012:role/function".to_owned()
    }

    /// Store a JSON secret.
    pub async fn create_secret(&self, name: &str, json: &str) {
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk().await);
        client
            .create_secret()
            .name(name)
            .secret_string(json)
            .send()
            .await
            .expect("create secret");
    }

    /// Give a stored secret a new value (a rotation).
    pub async fn rotate_secret(&self, name: &str, json: &str) {
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk().await);
        client
            .put_secret_value()
            .secret_id(name)
            .secret_string(json)
            .send()
            .await
            .expect("put secret value");
    }
}
