//! Amazon ECS on a `moto` server: clusters, task definitions, services and Fargate tasks,
//! made through the real AWS SDK, for the in-use provider's tests and bench. moto's ECS has
//! no service revisions and no pulled digests, and sends a task's container numbers where ECS
//! sends strings: `tests/fixtures/ecs/README.md` says how the tests get around each.

use aws_sdk_ecs::types::{ContainerDefinition, LaunchType};

use super::moto::Moto;

/// moto's ECS, through the AWS SDK.
pub struct Ecs {
    pub client: aws_sdk_ecs::Client,
}

impl Ecs {
    pub async fn on(moto: &Moto) -> Ecs {
        Ecs {
            client: aws_sdk_ecs::Client::new(&moto.sdk().await),
        }
    }

    pub async fn cluster(&self, name: &str) -> String {
        let out = self.client.create_cluster().cluster_name(name).send().await;
        let out = out.expect("create cluster");
        out.cluster()
            .and_then(|c| c.cluster_arn())
            .unwrap()
            .to_owned()
    }

    /// A task definition whose one container runs `image`; its ARN.
    pub async fn definition(&self, family: &str, image: &str) -> String {
        let container = ContainerDefinition::builder()
            .name("web")
            .image(image)
            .memory(128)
            .build();
        let out = self
            .client
            .register_task_definition()
            .family(family)
            .container_definitions(container)
            .send()
            .await
            .expect("register task definition");
        let def = out.task_definition().unwrap();
        def.task_definition_arn().unwrap().to_owned()
    }

    /// A service of `definition` in `cluster`; its ARN.
    pub async fn service(&self, cluster: &str, name: &str, definition: &str) -> String {
        let out = self
            .client
            .create_service()
            .cluster(cluster)
            .service_name(name)
            .task_definition(definition)
            .desired_count(1)
            .send()
            .await
            .expect("create service");
        out.service()
            .and_then(|s| s.service_arn())
            .unwrap()
            .to_owned()
    }

    /// `count` Fargate tasks of `definition` in `cluster`. The SDK cannot read moto's `RunTask`
    /// answer (see [`moto_container_numbers`](super::recorded_ecr::moto_container_numbers)):
    /// the tasks are made all the same, and [`Ecs::tasks`] lists them.
    pub async fn run(&self, cluster: &str, definition: &str, count: i32) {
        let _ = self
            .client
            .run_task()
            .cluster(cluster)
            .task_definition(definition)
            .count(count)
            .launch_type(LaunchType::Fargate)
            .send()
            .await;
    }

    /// The ARNs of every task in `cluster`.
    pub async fn tasks(&self, cluster: &str) -> Vec<String> {
        let out = self.client.list_tasks().cluster(cluster).send().await;
        out.expect("list tasks").task_arns().to_vec()
    }
}
