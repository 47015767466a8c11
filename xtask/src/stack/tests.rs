use super::*;

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
fn empty_change_sets_are_recognised() {
    assert!(is_empty_change_set("The submitted information didn't contain changes. Submit different information to create a change set."));
    assert!(is_empty_change_set("No updates are to be performed."));
    assert!(!is_empty_change_set(
        "Template format error: unresolved resource dependency"
    ));
}

#[test]
fn progress_classifies_terminal_states() {
    assert_eq!(progress("CREATE_COMPLETE"), Progress::Succeeded);
    assert_eq!(
        progress("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
        Progress::InProgress
    );
    assert_eq!(progress("ROLLBACK_COMPLETE"), Progress::Failed);
    assert_eq!(progress("UPDATE_ROLLBACK_COMPLETE"), Progress::Failed);
    assert_eq!(progress("CREATE_FAILED"), Progress::Failed);
}
