//! Which actions are one kind of work. Infrastructure as code that manages roles creates
//! one, attaches a policy to another and writes an inline policy to a third, one apply at a
//! time: a role-managing identity's first `iam:CreateRole` after days of
//! `iam:PutRolePolicy` is its routine, not a new behaviour. Changes that hand out access
//! to someone (an access key, a console password, a role's trust policy) belong to no
//! family: each is judged on its own.
//!
//! AWS IAM only, by CloudTrail event name (`iam:<name>`): the estates where automation
//! makes privilege changes for a living.

/// Families of AWS IAM operations, by event name.
const IAM_FAMILIES: &[&[&str]] = &[
    // Roles and their inline and managed policies (`UpdateAssumeRolePolicy`, who may take
    // a role on, is not among them).
    &[
        "CreateRole",
        "DeleteRole",
        "UpdateRole",
        "UpdateRoleDescription",
        "TagRole",
        "UntagRole",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "PutRolePermissionsBoundary",
        "CreateInstanceProfile",
        "AddRoleToInstanceProfile",
        "RemoveRoleFromInstanceProfile",
    ],
    // Users and groups, their policies and memberships (not their credentials).
    &[
        "CreateUser",
        "DeleteUser",
        "TagUser",
        "UntagUser",
        "AttachUserPolicy",
        "DetachUserPolicy",
        "PutUserPolicy",
        "DeleteUserPolicy",
        "CreateGroup",
        "DeleteGroup",
        "AddUserToGroup",
        "RemoveUserFromGroup",
        "AttachGroupPolicy",
        "DetachGroupPolicy",
        "PutGroupPolicy",
        "DeleteGroupPolicy",
    ],
    // Customer managed policies and their versions.
    &[
        "CreatePolicy",
        "DeletePolicy",
        "TagPolicy",
        "CreatePolicyVersion",
        "DeletePolicyVersion",
        "SetDefaultPolicyVersion",
    ],
];

/// The other actions of `action`'s family, as full action names (`iam:AttachRolePolicy`
/// for `iam:CreateRole`); empty when it belongs to none.
pub fn siblings(action: &str) -> impl Iterator<Item = String> + '_ {
    let name = action.strip_prefix("iam:");
    let family = name.and_then(|n| IAM_FAMILIES.iter().find(|f| f.contains(&n)));
    family.into_iter().flat_map(move |f| f.iter().filter(move |&&s| Some(s) != name).map(|s| format!("iam:{s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_changes_are_one_family_and_handing_out_access_is_none() {
        let roles: Vec<String> = siblings("iam:CreateRole").collect();
        assert!(
            roles.contains(&"iam:PutRolePolicy".to_string()) && roles.contains(&"iam:AttachRolePolicy".to_string())
        );
        assert!(!roles.contains(&"iam:CreateRole".to_string()), "not its own sibling");
        assert!(!roles.iter().any(|a| a.contains("User") || a == "iam:UpdateAssumeRolePolicy"));
        for alone in
            ["iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateAssumeRolePolicy", "s3:PutBucketPolicy"]
        {
            assert_eq!(siblings(alone).count(), 0, "{alone}");
        }
        // By event name exactly: another service's operation of the same name is not IAM's.
        assert_eq!(siblings("sso:CreateRole").count(), 0);
    }

    #[test]
    fn no_operation_is_in_two_families() {
        let all: Vec<&str> = IAM_FAMILIES.iter().flat_map(|f| f.iter().copied()).collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
    }
}
