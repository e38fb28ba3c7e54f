//! Which actions are one kind of work. Infrastructure as code that manages roles creates
//! one, attaches a policy to another and writes an inline policy to a third, one apply at a
//! time: a role-managing identity's first `iam:CreateRole` after days of
//! `iam:PutRolePolicy` is its routine, not a new behaviour. Changes that hand out access
//! to someone (an access key, a console password, a role's trust policy) belong to no
//! family: each is judged on its own.
//!
//! Each family also has the reads of what it manages (`iam:GetRole`, the policies of one
//! role): a Terraform plan refreshes every resource in its state before an apply changes
//! any, so a deploy job whose runs read roles and then changes one is managing them. Not
//! enumerations of the account (`ListRoles`, `GetAccountAuthorizationDetails`): that is a
//! scanner's or an intruder's reconnaissance, not a manager's refresh.
//!
//! AWS IAM only, by CloudTrail event name (`iam:<name>`): the estates where automation
//! makes privilege changes for a living.

struct Family {
    changes: &'static [&'static str],
    reads: &'static [&'static str],
}

/// Families of AWS IAM operations, by event name.
const IAM_FAMILIES: &[Family] = &[
    // Roles and their inline and managed policies (`UpdateAssumeRolePolicy`, who may take
    // a role on, is not among them).
    Family {
        changes: &[
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
        reads: &[
            "GetRole",
            "ListRolePolicies",
            "GetRolePolicy",
            "ListAttachedRolePolicies",
            "ListRoleTags",
            "ListInstanceProfilesForRole",
            "GetInstanceProfile",
        ],
    },
    // Users and groups, their policies and memberships (not their credentials).
    Family {
        changes: &[
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
        reads: &[
            "GetUser",
            "ListUserPolicies",
            "GetUserPolicy",
            "ListAttachedUserPolicies",
            "ListGroupsForUser",
            "ListUserTags",
            "GetGroup",
            "ListGroupPolicies",
            "GetGroupPolicy",
            "ListAttachedGroupPolicies",
        ],
    },
    // Customer managed policies and their versions.
    Family {
        changes: &[
            "CreatePolicy",
            "DeletePolicy",
            "TagPolicy",
            "CreatePolicyVersion",
            "DeletePolicyVersion",
            "SetDefaultPolicyVersion",
        ],
        reads: &["GetPolicy", "GetPolicyVersion", "ListPolicyVersions", "ListPolicyTags"],
    },
];

fn family(action: &str) -> Option<(&str, &'static Family)> {
    let name = action.strip_prefix("iam:")?;
    IAM_FAMILIES.iter().find(|f| f.changes.contains(&name)).map(|f| (name, f))
}

/// The other actions of `action`'s family, as full action names (`iam:AttachRolePolicy`
/// for `iam:CreateRole`); empty when it belongs to none.
pub fn siblings(action: &str) -> impl Iterator<Item = String> + '_ {
    family(action)
        .into_iter()
        .flat_map(|(name, f)| f.changes.iter().filter(move |&&s| s != name).map(|s| format!("iam:{s}")))
}

/// The reads of what `action`'s family manages, as full action names (`iam:GetRole` for
/// `iam:CreateRole`); empty when it belongs to none.
pub fn reads(action: &str) -> impl Iterator<Item = String> + '_ {
    family(action).into_iter().flat_map(|(_, f)| f.reads.iter().map(|s| format!("iam:{s}")))
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
    fn a_family_s_reads_are_of_what_it_manages_never_an_enumeration_of_the_account() {
        let roles: Vec<String> = reads("iam:AttachRolePolicy").collect();
        assert!(roles.contains(&"iam:GetRole".to_string()) && roles.contains(&"iam:ListRolePolicies".to_string()));
        assert!(reads("iam:CreateUser").any(|r| r == "iam:GetUser"));
        assert!(reads("iam:CreatePolicyVersion").any(|r| r == "iam:GetPolicyVersion"));
        let all: Vec<String> = IAM_FAMILIES.iter().flat_map(|f| f.changes).flat_map(|c| reads(c)).collect();
        for enumeration in ["iam:ListRoles", "iam:ListUsers", "iam:ListPolicies", "iam:GetAccountAuthorizationDetails"]
        {
            assert!(!all.iter().any(|r| r == enumeration), "{enumeration}");
        }
        assert_eq!(reads("iam:CreateAccessKey").count(), 0, "handing out access has no family");
    }

    #[test]
    fn no_operation_is_in_two_families() {
        let all: Vec<&str> = IAM_FAMILIES.iter().flat_map(|f| f.changes.iter().chain(f.reads).copied()).collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
    }
}
