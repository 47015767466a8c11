use super::change_set::is_empty_change_set;
use super::*;
use aws_sdk_cloudformation::types::Change;

#[test]
fn plans_follow_the_stack_status() {
    assert_eq!(plan("s", None), Plan::Create);
    assert_eq!(plan("s", Some("REVIEW_IN_PROGRESS")), Plan::Create);
    assert_eq!(plan("s", Some("CREATE_COMPLETE")), Plan::Update);
    assert_eq!(plan("s", Some("UPDATE_ROLLBACK_COMPLETE")), Plan::Update);
    assert_eq!(plan("s", Some("ROLLBACK_COMPLETE")), Plan::Recreate);
    assert_eq!(plan("s", Some("UPDATE_IN_PROGRESS")), Plan::Wait);
    let Plan::Refuse(why) = plan("s", Some("UPDATE_ROLLBACK_FAILED")) else {
        panic!()
    };
    assert!(
        why.contains("continue-update-rollback --stack-name s"),
        "{why}"
    );
}

#[test]
fn effective_parameters_fill_in_template_defaults() {
    let stack = Stack {
        name: "s".into(),
        label: "s".into(),
        template: "Parameters:\n  A: { Type: String }\n  B: { Type: Number, Default: 30 }\n  C: { Type: String, Default: x }\nResources: {}\n".into(),
        parameters: BTreeMap::from([("A".into(), "1".into()), ("C".into(), "y".into())]),
        tags: vec![],
    };
    let p = effective_parameters(&stack).unwrap();
    assert_eq!(
        p,
        BTreeMap::from([
            ("A".into(), "1".into()),
            ("B".into(), "30".into()),
            ("C".into(), "y".into())
        ])
    );
    let missing = Stack {
        parameters: BTreeMap::new(),
        ..stack
    };
    assert_eq!(
        effective_parameters(&missing),
        None,
        "A has no value and no default"
    );
}

#[test]
fn empty_change_sets_are_recognised() {
    assert!(is_empty_change_set("The submitted information didn't contain changes. Submit different information to create a change set."));
    assert!(is_empty_change_set("No updates are to be performed."));
    assert!(!is_empty_change_set(
        "Template format error: unresolved resource dependency"
    ));
}

#[test]
fn conditional_replacements_are_maybe_not_yes() {
    use aws_sdk_cloudformation::types::{Replacement as Cfn, ResourceChange};
    let row = |r: Option<Cfn>| {
        let change = Change::builder()
            .resource_change(
                ResourceChange::builder()
                    .logical_resource_id("Bucket")
                    .resource_type("AWS::S3::Bucket")
                    .action(aws_sdk_cloudformation::types::ChangeAction::Modify)
                    .set_replacement(r)
                    .build(),
            )
            .build();
        super::change_set::change_row(&change).unwrap().replacement
    };
    assert_eq!(row(Some(Cfn::True)), Replacement::Yes);
    assert_eq!(row(Some(Cfn::Conditional)), Replacement::Maybe);
    assert_eq!(row(Some(Cfn::False)), Replacement::No);
    assert_eq!(row(None), Replacement::No);
}

#[test]
fn progress_classifies_terminal_states() {
    assert_eq!(progress("CREATE_COMPLETE"), Progress::Succeeded);
    assert_eq!(
        progress("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
        Progress::Running
    );
    assert_eq!(progress("ROLLBACK_COMPLETE"), Progress::Failed);
    assert_eq!(progress("UPDATE_ROLLBACK_COMPLETE"), Progress::Failed);
    assert_eq!(progress("CREATE_FAILED"), Progress::Failed);
}

fn import_of(logical_id: &str) -> Import {
    Import {
        logical_id: logical_id.into(),
        resource_type: "AWS::ECR::Repository".into(),
        identifier: ("RepositoryName".into(), "demo-dev".into()),
    }
}

#[test]
fn an_import_template_keeps_only_the_imported_resources_and_no_outputs() {
    let template = "Parameters:\n  P: { Type: String }\nResources:\n  Repo:\n    Type: AWS::ECR::Repository\n    DeletionPolicy: Retain\n    Properties: { RepositoryName: !Sub \"${P}-x\" }\n  Other:\n    Type: AWS::SNS::Topic\nOutputs:\n  Name: { Value: !Ref Repo }\n";
    let cut = import_template(template, &[import_of("Repo")]).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&cut).unwrap();
    assert!(doc.get("Outputs").is_none(), "{cut}");
    assert!(doc["Parameters"].get("P").is_some(), "{cut}");
    let resources = doc["Resources"].as_mapping().unwrap();
    assert_eq!(resources.len(), 1, "{cut}");
    assert!(cut.contains("!Sub"), "short tags must survive: {cut}");
}

#[test]
fn only_retained_resources_can_be_imported() {
    let template = "Resources:\n  Repo:\n    Type: AWS::ECR::Repository\n";
    let err = import_template(template, &[import_of("Repo")]).unwrap_err();
    assert!(err.to_string().contains("DeletionPolicy: Retain"), "{err}");
    let err = import_template(template, &[import_of("Missing")]).unwrap_err();
    assert!(err.to_string().contains("no resource Missing"), "{err}");
}

mod with_mocked_cloudformation {
    use super::super::*;
    use crate::mock::mock_sdk;
    use crate::ui::Ui;
    use aws_sdk_cloudformation::operation::describe_stacks::{
        DescribeStacksError, DescribeStacksOutput,
    };
    use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
    use aws_sdk_cloudformation::operation::{
        create_change_set::CreateChangeSetOutput, delete_change_set::DeleteChangeSetOutput,
        delete_stack::DeleteStackOutput, describe_change_set::DescribeChangeSetOutput,
        describe_stack_events::DescribeStackEventsOutput,
        execute_change_set::ExecuteChangeSetOutput,
    };
    use aws_sdk_cloudformation::primitives::DateTime;
    use aws_sdk_cloudformation::types::{
        Capability, Change, ChangeAction, ChangeSetStatus, Output, ResourceChange, StackEvent,
        StackStatus,
    };
    use aws_smithy_mocks::{mock, MockResponse};

    fn stack() -> Stack {
        Stack {
            name: "demo-dev-vpc".into(),
            label: "vpc".into(),
            template: "Resources: {}".into(),
            parameters: BTreeMap::from([("ProjectName".into(), "demo".into())]),
            tags: vec![("project".into(), "demo".into())],
        }
    }

    /// The deployed stack `demo-dev-vpc` in `status`, with its `VpcId` output.
    fn deployed(status: &str) -> aws_sdk_cloudformation::types::builders::StackBuilder {
        aws_sdk_cloudformation::types::Stack::builder()
            .stack_name("demo-dev-vpc")
            .stack_id("arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev-vpc/1")
            .stack_status(StackStatus::from(status))
            .creation_time(DateTime::from_secs(0))
            .outputs(
                Output::builder()
                    .output_key("VpcId")
                    .output_value("vpc-123")
                    .build(),
            )
    }

    fn existing(status: &str) -> DescribeStacksOutput {
        DescribeStacksOutput::builder()
            .stacks(deployed(status).build())
            .build()
    }

    /// GetTemplate answering with an older template, so a change set is needed.
    fn older_template() -> aws_smithy_mocks::Rule {
        mock!(Client::get_template).then_output(|| {
            GetTemplateOutput::builder()
                .template_body("Resources: {old: 1}")
                .build()
        })
    }

    fn missing() -> DescribeStacksError {
        DescribeStacksError::generic(crate::mock::service_error(
            "ValidationError",
            "Stack with id demo-dev-vpc does not exist",
        ))
    }

    use crate::events::tests::event;

    fn events(list: Vec<StackEvent>) -> DescribeStackEventsOutput {
        DescribeStackEventsOutput::builder()
            .set_stack_events(Some(list))
            .build()
    }

    fn ready_with_one_change() -> DescribeChangeSetOutput {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::CreateComplete)
            .changes(
                Change::builder()
                    .resource_change(
                        ResourceChange::builder()
                            .action(ChangeAction::Add)
                            .logical_resource_id("Vpc")
                            .resource_type("AWS::EC2::VPC")
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    const FAST: Duration = Duration::ZERO;

    /// `CreateChangeSet` succeeds (only for change sets of `kind`, when given).
    fn create_change_set_ok(kind: Option<ChangeSetType>) -> aws_smithy_mocks::Rule {
        mock!(Client::create_change_set)
            .match_requests(move |r| kind.is_none() || r.change_set_type() == kind.as_ref())
            .then_output(|| CreateChangeSetOutput::builder().build())
    }

    fn no_new_events() -> aws_smithy_mocks::Rule {
        mock!(Client::describe_stack_events).then_output(|| events(vec![]))
    }

    fn execute_ok() -> aws_smithy_mocks::Rule {
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build())
    }

    fn delete_change_set_ok() -> aws_smithy_mocks::Rule {
        mock!(Client::delete_change_set).then_output(|| DeleteChangeSetOutput::builder().build())
    }

    fn ready_rule() -> aws_smithy_mocks::Rule {
        mock!(Client::describe_change_set).then_output(ready_with_one_change)
    }

    /// The answers of a deploy through a change set, each the ordinary one: an older deployed
    /// template, the change set made and ready with one change, no new events, executed. A test
    /// swaps in the ones its case is about and counts the calls.
    struct Answers {
        template: aws_smithy_mocks::Rule,
        create: aws_smithy_mocks::Rule,
        ready: aws_smithy_mocks::Rule,
        events: aws_smithy_mocks::Rule,
        execute: aws_smithy_mocks::Rule,
    }

    impl Answers {
        fn ordinary() -> Answers {
            Answers {
                template: older_template(),
                create: create_change_set_ok(None),
                ready: ready_rule(),
                events: no_new_events(),
                execute: execute_ok(),
            }
        }

        /// A client answering `DescribeStacks` with `describe`, the rest with these, and `more`
        /// (a call nothing answers fails the test).
        fn client(
            &self,
            describe: &aws_smithy_mocks::Rule,
            more: &[&aws_smithy_mocks::Rule],
        ) -> Client {
            let ordinary = [
                describe,
                &self.template,
                &self.create,
                &self.ready,
                &self.events,
                &self.execute,
            ];
            mock_sdk!(
                aws_sdk_cloudformation,
                rules: ordinary.into_iter().chain(more.iter().copied())
            )
        }
    }

    /// Approves every change set.
    fn yes(_: &Stack, _: &[ChangeRow]) -> futures_util::future::BoxFuture<'static, bool> {
        Box::pin(async { true })
    }

    fn settings<'a>(approve: &'a Approve<'a>) -> Settings<'a> {
        Settings {
            poll: FAST,
            wait_if_busy: true,
            approve,
        }
    }

    /// Deploy with instant polling, approving every change set.
    async fn run(cfn: &Client, stack: &Stack) -> Result<Deployed> {
        deploy(cfn, stack, &settings(&yes), &Ui::new().spinner("test")).await
    }

    #[tokio::test]
    async fn a_change_set_without_changes_is_success_and_executes_nothing() {
        let describe = mock!(Client::describe_stacks).then_output(|| existing("CREATE_COMPLETE"));
        let answers = Answers {
            create: create_change_set_ok(Some(ChangeSetType::Update)),
            ready: mock!(Client::describe_change_set).then_output(|| {
                DescribeChangeSetOutput::builder()
                    .status(ChangeSetStatus::Failed)
                    .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
                    .build()
            }),
            ..Answers::ordinary()
        };
        let delete = delete_change_set_ok();
        let cfn = answers.client(&describe, &[&delete]);

        let deployed = run(&cfn, &stack()).await.unwrap();
        assert_eq!(deployed.outcome, Outcome::NoChanges);
        assert_eq!(deployed.outputs["VpcId"], "vpc-123");
        assert_eq!(answers.create.num_calls(), 1);
        assert_eq!(
            delete.num_calls(),
            1,
            "the empty change set must be cleaned up"
        );
        assert_eq!(answers.execute.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_missing_stack_is_created_and_its_events_are_followed_in_order() {
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .error(missing)
            .output(|| existing("CREATE_IN_PROGRESS"))
            .output(|| existing("CREATE_COMPLETE"))
            .build();
        let create = mock!(Client::create_change_set)
            .match_requests(|r| {
                r.change_set_type() == Some(&ChangeSetType::Create)
                    && r.capabilities().contains(&Capability::CapabilityIam)
                    && r.parameters()
                        .iter()
                        .any(|p| p.parameter_key() == Some("ProjectName"))
            })
            .then_output(|| CreateChangeSetOutput::builder().build());
        let ready = ready_rule();
        // Newest first, as CloudFormation returns them: the cursor, then two polls.
        let stack_events = mock!(Client::describe_stack_events)
            .sequence()
            .output(|| events(vec![event("0", "demo-dev-vpc", "REVIEW_IN_PROGRESS", None)]))
            .output(|| {
                events(vec![
                    event("1", "Vpc", "CREATE_IN_PROGRESS", None),
                    event("0", "demo-dev-vpc", "REVIEW_IN_PROGRESS", None),
                ])
            })
            .output(|| {
                events(vec![
                    event("3", "demo-dev-vpc", "CREATE_COMPLETE", None),
                    event("2", "Vpc", "CREATE_COMPLETE", None),
                    event("1", "Vpc", "CREATE_IN_PROGRESS", None),
                ])
            })
            .build();
        let execute = execute_ok();
        let cfn = mock_sdk!(
            aws_sdk_cloudformation,
            [
                &older_template(),
                &describe,
                &create,
                &ready,
                &stack_events,
                &execute
            ]
        );

        let mut cursor = Cursor::default();
        let first = cursor.poll(&cfn, "demo-dev-vpc").await.unwrap();
        assert_eq!(first.len(), 1);
        let second = cursor.poll(&cfn, "demo-dev-vpc").await.unwrap();
        assert_eq!(
            second
                .iter()
                .map(|e| e.event_id().unwrap())
                .collect::<Vec<_>>(),
            ["1"]
        );
        let third = cursor.poll(&cfn, "demo-dev-vpc").await.unwrap();
        assert_eq!(
            third
                .iter()
                .map(|e| e.event_id().unwrap())
                .collect::<Vec<_>>(),
            ["2", "3"],
            "oldest first"
        );

        // The same answers drive a full create.
        let stack_events2 = mock!(Client::describe_stack_events).then_compute_response(|_| {
            MockResponse::Output(events(vec![event("1", "Vpc", "CREATE_IN_PROGRESS", None)]))
        });
        let describe2 = mock!(Client::describe_stacks)
            .sequence()
            .error(missing)
            .output(|| existing("CREATE_IN_PROGRESS"))
            .output(|| existing("CREATE_COMPLETE"))
            .build();
        let cfn = mock_sdk!(
            aws_sdk_cloudformation,
            [&describe2, &create, &ready, &stack_events2, &execute]
        );
        let deployed = run(&cfn, &stack()).await.unwrap();
        assert_eq!(deployed.outcome, Outcome::Created);
        assert_eq!(deployed.outputs["VpcId"], "vpc-123");
        assert_eq!(execute.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_create_names_the_first_failing_resource() {
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| existing("CREATE_COMPLETE"))
            .output(|| existing("UPDATE_ROLLBACK_COMPLETE"))
            .build();
        let stack_events = failing_events(
            "demo-dev-vpc",
            "UPDATE",
            "Subnet",
            "The CIDR '10.9.0.0/24' conflicts with another subnet",
        );
        let answers = Answers {
            events: stack_events,
            ..Answers::ordinary()
        };
        let cfn = answers.client(&describe, &[]);

        let err = run(&cfn, &stack()).await.unwrap_err().to_string();
        assert!(err.contains("UPDATE_ROLLBACK_COMPLETE"), "{err}");
        assert!(
            err.contains("Subnet (AWS::EC2::Subnet): The CIDR '10.9.0.0/24' conflicts"),
            "{err}"
        );
        assert!(!err.contains("cancelled"), "{err}");
        assert!(
            err.ends_with("Fix it (template or infra/env parameters), then deploy again"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_rollback_complete_stack_is_deleted_then_created() {
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| existing("ROLLBACK_COMPLETE"))
            .output(|| existing("DELETE_IN_PROGRESS"))
            .error(missing)
            .error(missing)
            .output(|| existing("CREATE_COMPLETE"))
            .build();
        let delete =
            mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
        let answers = Answers {
            create: create_change_set_ok(Some(ChangeSetType::Create)),
            ..Answers::ordinary()
        };
        let cfn = answers.client(&describe, &[&delete]);

        let deployed = run(&cfn, &stack()).await.unwrap();
        assert_eq!(deployed.outcome, Outcome::Created);
        assert_eq!(delete.num_calls(), 1);
        assert_eq!(answers.create.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_busy_stack_is_waited_for_then_updated() {
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| existing("UPDATE_IN_PROGRESS"))
            .output(|| existing("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"))
            .output(|| existing("UPDATE_COMPLETE"))
            .output(|| existing("UPDATE_IN_PROGRESS"))
            .output(|| existing("UPDATE_COMPLETE"))
            .build();
        let answers = Answers {
            create: create_change_set_ok(Some(ChangeSetType::Update)),
            ..Answers::ordinary()
        };
        let cfn = answers.client(&describe, &[]);

        let deployed = run(&cfn, &stack()).await.unwrap();
        assert_eq!(deployed.outcome, Outcome::Updated);
        assert_eq!(
            describe.num_calls(),
            5,
            "two polls while busy, then the deploy's own"
        );
        assert_eq!(answers.execute.num_calls(), 1);
    }

    #[tokio::test]
    async fn no_wait_refuses_a_busy_stack_and_changes_nothing() {
        let describe =
            mock!(Client::describe_stacks).then_output(|| existing("UPDATE_IN_PROGRESS"));
        let answers = Answers::ordinary();
        let cfn = answers.client(&describe, &[]);
        let settings = Settings {
            wait_if_busy: false,
            ..settings(&yes)
        };
        let err = deploy(&cfn, &stack(), &settings, &Ui::new().spinner("test"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("demo-dev-vpc is UPDATE_IN_PROGRESS") && err.contains("--no-wait"),
            "{err}"
        );
        assert_eq!((describe.num_calls(), answers.create.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn an_import_runs_an_import_change_set_without_outputs() {
        let create = mock!(Client::create_change_set)
            .match_requests(|r| {
                let resource = &r.resources_to_import()[0];
                r.change_set_type() == Some(&ChangeSetType::Import)
                    && resource.logical_resource_id() == Some("Repo")
                    && resource
                        .resource_identifier()
                        .and_then(|id| id.get("RepositoryName"))
                        .map(String::as_str)
                        == Some("demo-dev")
                    && !r.template_body().unwrap_or_default().contains("Outputs")
            })
            .then_output(|| CreateChangeSetOutput::builder().build());
        let ready = ready_rule();
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| existing("IMPORT_IN_PROGRESS"))
            .output(|| existing("IMPORT_COMPLETE"))
            .build();
        let stack_events = no_new_events();
        let execute = execute_ok();
        let cfn = mock_sdk!(
            aws_sdk_cloudformation,
            [&create, &ready, &describe, &stack_events, &execute]
        );
        let stack = Stack {
            template: "Resources:\n  Repo:\n    Type: AWS::ECR::Repository\n    DeletionPolicy: Retain\nOutputs:\n  X: { Value: 1 }\n".into(),
            ..stack()
        };
        import(
            &cfn,
            &stack,
            &[super::import_of("Repo")],
            &settings(&yes),
            &Ui::new().spinner("test"),
        )
        .await
        .unwrap();
        assert_eq!((create.num_calls(), execute.num_calls()), (1, 1));
        assert_eq!(describe.num_calls(), 2, "followed until IMPORT_COMPLETE");
    }

    #[tokio::test]
    async fn update_rollback_failed_stops_before_any_change() {
        let describe =
            mock!(Client::describe_stacks).then_output(|| existing("UPDATE_ROLLBACK_FAILED"));
        let answers = Answers::ordinary();
        let cfn = answers.client(&describe, &[]);
        let err = run(&cfn, &stack()).await.unwrap_err().to_string();
        assert!(err.contains("continue-update-rollback"), "{err}");
        assert_eq!(answers.create.num_calls(), 0);
    }

    /// A change set for a stack whose template imports an export nothing has yet, as before
    /// the first deploy of the stacks before it.
    fn missing_export_answers() -> Answers {
        Answers {
            ready: mock!(Client::describe_change_set).then_output(|| {
                DescribeChangeSetOutput::builder()
                    .status(ChangeSetStatus::Failed)
                    .status_reason("No export named demo-dev-VpcId found")
                    .build()
            }),
            ..Answers::ordinary()
        }
    }

    #[tokio::test]
    async fn a_preview_of_a_stack_awaiting_exports_says_so_and_leaves_nothing() {
        let describe = mock!(Client::describe_stacks).then_error(missing);
        let answers = missing_export_answers();
        let delete = delete_change_set_ok();
        let delete_stack =
            mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
        let cfn = answers.client(&describe, &[&delete, &delete_stack]);

        let preview = preview(&cfn, &stack(), FAST).await.unwrap();
        assert_eq!(
            preview,
            Preview::AwaitsExports("No export named demo-dev-VpcId found".into())
        );
        assert_eq!((delete.num_calls(), delete_stack.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_deploy_missing_an_export_says_which_and_executes_nothing() {
        let describe = mock!(Client::describe_stacks).then_output(|| existing("CREATE_COMPLETE"));
        let answers = missing_export_answers();
        let delete = delete_change_set_ok();
        let cfn = answers.client(&describe, &[&delete]);

        let err = run(&cfn, &stack()).await.unwrap_err().to_string();
        assert!(
            err.contains("No export named demo-dev-VpcId found")
                && err.contains("Fn::ImportValue names in infra/vpc.yaml"),
            "{err}"
        );
        assert_eq!((delete.num_calls(), answers.execute.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn a_replacement_under_an_imported_export_is_refused_before_it_runs() {
        let exported = || {
            let stack = deployed("UPDATE_COMPLETE")
                .set_outputs(Some(vec![Output::builder()
                    .output_key("VpcId")
                    .output_value("vpc-123")
                    .export_name("demo-dev-VpcId")
                    .build()]))
                .build();
            DescribeStacksOutput::builder().stacks(stack).build()
        };
        let replacing = || {
            let change = ResourceChange::builder()
                .action(ChangeAction::Modify)
                .logical_resource_id("Vpc")
                .resource_type("AWS::EC2::VPC")
                .replacement(aws_sdk_cloudformation::types::Replacement::True)
                .build();
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .changes(Change::builder().resource_change(change).build())
                .build()
        };
        let template = "Resources:\n  Vpc: {Type: AWS::EC2::VPC}\nOutputs:\n  VpcId:\n    Value: !Ref Vpc\n    Export: {Name: demo-dev-VpcId}\n";
        let stack = Stack {
            template: template.into(),
            ..stack()
        };
        let describe = mock!(Client::describe_stacks).then_output(exported);
        let answers = Answers {
            ready: mock!(Client::describe_change_set).then_output(replacing),
            ..Answers::ordinary()
        };
        let imports = mock!(Client::list_imports).then_output(|| {
            aws_sdk_cloudformation::operation::list_imports::ListImportsOutput::builder()
                .imports("demo-dev-ecs")
                .build()
        });
        let delete = delete_change_set_ok();
        let cfn = answers.client(&describe, &[&imports, &delete]);

        let err = run(&cfn, &stack).await.unwrap_err().to_string();
        assert!(
            err.contains(
                "export demo-dev-VpcId (it replaces Vpc (AWS::EC2::VPC); imported by demo-dev-ecs)"
            ) && err.ends_with("nothing was changed"),
            "{err}"
        );
        assert_eq!((delete.num_calls(), answers.execute.num_calls()), (1, 0));

        // diff says the same, as an error, and leaves no change set behind.
        let err = preview(&cfn, &stack, FAST).await.unwrap_err().to_string();
        assert!(err.contains("imported by demo-dev-ecs"), "{err}");
        assert_eq!(delete.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_refused_change_set_is_deleted_and_nothing_runs() {
        // An existing stack keeps its stack; a new one loses the empty stack its change set made.
        for exists in [true, false] {
            let describe = if exists {
                mock!(Client::describe_stacks).then_output(|| existing("CREATE_COMPLETE"))
            } else {
                mock!(Client::describe_stacks).then_error(missing)
            };
            let answers = Answers::ordinary();
            let delete = delete_change_set_ok();
            let delete_stack =
                mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
            let cfn = answers.client(&describe, &[&delete, &delete_stack]);
            let spinner = Ui::new().spinner("test");
            let refuse =
                |_: &Stack, rows: &[ChangeRow]| -> futures_util::future::BoxFuture<'_, bool> {
                    assert_eq!(rows[0].logical_id, "Vpc");
                    Box::pin(async { false })
                };
            let err = deploy(&cfn, &stack(), &settings(&refuse), &spinner)
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("cancelled: nothing was changed"),
                "{err}"
            );
            assert_eq!((delete.num_calls(), answers.execute.num_calls()), (1, 0));
            assert_eq!(
                delete_stack.num_calls(),
                usize::from(!exists),
                "exists: {exists}"
            );
        }
    }

    #[tokio::test]
    async fn an_identical_template_and_parameters_skip_the_change_set() {
        let same = || {
            let stack = deployed("UPDATE_COMPLETE")
                .parameters(
                    aws_sdk_cloudformation::types::Parameter::builder()
                        .parameter_key("ProjectName")
                        .parameter_value("demo")
                        .build(),
                )
                // An empty value may come back without a value at all.
                .parameters(
                    aws_sdk_cloudformation::types::Parameter::builder()
                        .parameter_key("DesiredCount")
                        .build(),
                )
                .tags(
                    aws_sdk_cloudformation::types::Tag::builder()
                        .key("project")
                        .value("demo")
                        .build(),
                );
            DescribeStacksOutput::builder()
                .stacks(stack.build())
                .build()
        };
        let with_params = Stack {
            template: "Parameters:\n  ProjectName: { Type: String }\n  DesiredCount: { Type: String, Default: \"\" }\nResources: {}\n".into(),
            ..stack()
        };
        let body = with_params.template.clone();
        let describe = mock!(Client::describe_stacks).then_output(same);
        let template = mock!(Client::get_template).then_output(move || {
            GetTemplateOutput::builder()
                .template_body(body.clone())
                .build()
        });
        let create = create_change_set_ok(None);
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&describe, &template, &create]);
        let deployed = run(&cfn, &with_params).await.unwrap();
        assert_eq!(deployed.outcome, Outcome::NoChanges);
        assert_eq!(deployed.outputs["VpcId"], "vpc-123");
        assert_eq!(create.num_calls(), 0, "no change set is needed");

        // A different parameter value needs one.
        let changed = Stack {
            parameters: BTreeMap::from([("ProjectName".into(), "other".into())]),
            ..with_params
        };
        let ready = mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::Failed)
                .status_reason("No updates are to be performed.")
                .build()
        });
        let delete = delete_change_set_ok();
        let cfn = mock_sdk!(
            aws_sdk_cloudformation,
            [&describe, &template, &create, &ready, &delete]
        );
        run(&cfn, &changed).await.unwrap();
        assert_eq!(create.num_calls(), 1);
    }

    /// Stack events, asked for by `stack` (name or id): first the stack's own `CREATE_COMPLETE`
    /// (where a cursor starts), then `logical` failing its `operation` (`UPDATE`, `DELETE`) for
    /// `reason`, and the cancellation of another resource after it.
    fn failing_events(
        stack: &'static str,
        operation: &'static str,
        logical: &'static str,
        reason: &'static str,
    ) -> aws_smithy_mocks::Rule {
        mock!(Client::describe_stack_events)
            .match_requests(move |r| r.stack_name() == Some(stack))
            .sequence()
            .output(|| events(vec![event("0", "demo-dev-vpc", "CREATE_COMPLETE", None)]))
            .output(move || {
                let cancelled = format!("Resource {} cancelled", operation.to_lowercase());
                events(vec![
                    event("3", "Igw", &format!("{operation}_FAILED"), Some(&cancelled)),
                    event("2", logical, &format!("{operation}_FAILED"), Some(reason)),
                    event("1", logical, &format!("{operation}_IN_PROGRESS"), None),
                    event("0", "demo-dev-vpc", "CREATE_COMPLETE", None),
                ])
            })
            .build()
    }

    fn delete_stack_ok() -> aws_smithy_mocks::Rule {
        mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build())
    }

    async fn run_destroy(cfn: &Client) -> Result<bool> {
        destroy(cfn, "demo-dev-vpc", "vpc", FAST, &Ui::new().spinner("test")).await
    }

    #[tokio::test]
    async fn destroy_waits_for_a_running_update_then_deletes() {
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| existing("UPDATE_IN_PROGRESS"))
            .output(|| existing("UPDATE_COMPLETE"))
            .output(|| existing("DELETE_IN_PROGRESS"))
            .error(missing)
            .build();
        let delete = delete_stack_ok();
        let cfn = mock_sdk!(
            aws_sdk_cloudformation,
            [&describe, &delete, &no_new_events()]
        );

        assert!(run_destroy(&cfn).await.unwrap());
        assert_eq!(delete.num_calls(), 1, "deleted once, after the update");
        assert_eq!(describe.num_calls(), 4, "one look per state, none twice");

        // No stack, nothing to delete.
        let describe = mock!(Client::describe_stacks).then_error(missing);
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&describe, &delete]);
        assert!(!run_destroy(&cfn).await.unwrap());
        assert_eq!(delete.num_calls(), 1);
    }

    /// The error of a destroy whose stack ends `DELETE_FAILED`, with these events.
    async fn failed_destroy(stack_events: aws_smithy_mocks::Rule) -> String {
        let describe = mock!(Client::describe_stacks)
            .sequence()
            .output(|| existing("CREATE_COMPLETE"))
            .output(|| existing("DELETE_FAILED"))
            .build();
        let delete = delete_stack_ok();
        let cfn = mock_sdk!(aws_sdk_cloudformation, [&describe, &delete, &stack_events]);
        run_destroy(&cfn).await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn a_failed_delete_names_the_resource_and_how_to_leave_it_behind() {
        // Read by the stack's id: a deleted stack's name finds nothing.
        let err = failed_destroy(failing_events(
            "arn:aws:cloudformation:us-east-1:123456789012:stack/demo-dev-vpc/1",
            "DELETE",
            "PrivateSubnet1",
            "The subnet 'subnet-1' has dependencies and cannot be deleted.",
        ))
        .await;
        assert!(
            err.contains("First failure: PrivateSubnet1 (AWS::EC2::Subnet): The subnet 'subnet-1' has dependencies"),
            "{err}"
        );
        assert!(
            err.ends_with("`aws cloudformation delete-stack --stack-name demo-dev-vpc --retain-resources PrivateSubnet1`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stack_whose_export_is_imported_fails_to_delete_by_itself_and_says_so() {
        let in_use = "Export demo-dev-VpcId cannot be deleted as it is in use by other-stack";
        let stack_events = mock!(Client::describe_stack_events)
            .sequence()
            .output(|| events(vec![event("0", "demo-dev-vpc", "CREATE_COMPLETE", None)]))
            .output(move || {
                let mut failed = event("1", "demo-dev-vpc", "DELETE_FAILED", Some(in_use));
                failed.resource_type = Some("AWS::CloudFormation::Stack".into());
                events(vec![failed])
            })
            .build();

        let err = failed_destroy(stack_events).await;
        assert!(
            err.contains(in_use)
                && err.ends_with("Remove what still uses it (named there) and run again"),
            "{err}"
        );
        assert!(!err.contains("--retain-resources"), "{err}");
    }
}
