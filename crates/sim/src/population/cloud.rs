//! The cloud estate (`nhid-sim simulate --estate cloud`): the classic population for part of
//! it, and for the rest identities that behave as the platforms document, with none of the
//! classic population's stability. What each archetype does:
//!
//! - **CI runners** (`gha-deploy-…`): GitHub Actions deploying to AWS through an OIDC role. A
//!   job at an irregular time of a working day assumes the role
//!   (`sts:AssumeRoleWithWebIdentity`, from `configure-aws-credentials`) and makes a burst of
//!   calls with the session it got, from a fresh runner address in GitHub's published ranges,
//!   through the AWS CLI v2 (`command/<service>.<command>`) or Terraform. One session per job,
//!   valid an hour, named after the run.
//! - **Serverless functions**: Lambda functions outside a VPC (`fn-…`) and Fargate tasks
//!   (`task-…`). Every execution environment (cold start) or task has its own AWS public
//!   address and its own role session key (`ASIA…`); functions are bursty (bursts bring extra
//!   cold starts), tasks come and go every few hours; clients are the JavaScript v3 SDK and
//!   boto3 on Lambda, the Go v2 and Java SDKs and boto3 on Fargate.
//! - **Autoscaled fleets** (`fleet-…`): an instance role on 4–10 instances at night and more by
//!   day, each instance with its own address drawn from 30–50 /24 networks of AWS's space, its
//!   own hourly credential, and the SSM agent beside the application's SDK.
//! - **Low-volume keys** (`iamuser-…`): static keys making 5–60 calls a day (a quarter of them
//!   a trickle of 0.2–0.5 calls a minute), with a Zipf-distributed mix over 10–30 actions, so
//!   that after a day many of its usual actions have not been seen yet; one or two services
//!   only on one day of the week.
//! - **Terraform** (`tf-…`): a role assumed from CI two to five times a week; half of the runs
//!   apply changes, which are IAM changes (`iam:CreateRole`, `PutRolePolicy`,
//!   `AttachRolePolicy`, ...).
//! - **Weekly jobs** (`cron-weekly-…`): a job that runs once a week (a scheduled Fargate task or
//!   a scheduled workflow), so its first run after learning is its second occurrence.
//!
//! Every client in this estate renders its user agent per call (`clients`), classic identities
//! included, and a quarter of the identities upgrade their SDK by a minor version mid-run.
//!
//! Everything an identity does is planned when it is built (episodes with their addresses,
//! rates and steps; bursts) except the calls themselves, which are drawn minute by minute.

use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};

use super::{
    Behaviour, CLOUD, CredentialPlan, Identity, MACHINE_DENIED_P, MACHINE_FAILURE_P, MACHINE_MAX_BAD_PER_MINUTE, Op,
    TEAMS, TENANTS, Window, choose_ops, op, pick, poisson, static_key, utc_offset, weekday,
};
use crate::clients::{Client, Platform, UserAgent};
use crate::ranges::Provider;
use crate::{Archetype, Attribution, CredentialUse, Draft, Resource, Rng, Tag};
use nhid_model::event::{Outcome, PrincipalType};
use nhid_model::time::{DAY, HOUR, MINUTE, Millis, SECOND};

/// Share of each archetype in percent, in build order.
const MIX: &[(Archetype, usize)] = &[
    (Archetype::Classic, 45),
    (Archetype::Serverless, 17),
    (Archetype::LowVolumeKey, 13),
    (Archetype::CiRunner, 10),
    (Archetype::AutoscaledFleet, 7),
    (Archetype::WeeklyJob, 5),
    (Archetype::Terraform, 3),
];

/// A share of the SDK users upgrade by a minor version at some moment of the run.
const SDK_UPGRADE_P: f64 = 0.25;

/// How a role session is named in the events (`actor.session_id`), as the platforms name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionNaming {
    /// `gha-<run id>-<attempt>`: a role session name per workflow run.
    Run,
    /// The function's name: Lambda names every session of a function after it.
    Function,
    /// The ECS task id (32 hex digits).
    Task,
    /// The EC2 instance id.
    Instance,
}

/// One job, execution environment, task or instance: its own address, session and host.
#[derive(Clone, Debug)]
pub(crate) struct Episode {
    /// From 1, in start order; names the session.
    pub number: u32,
    pub start: Millis,
    pub end: Millis,
    pub ip: [u8; 4],
    /// Its own calls per minute, before the day-to-day factor (jobs, tasks and instances);
    /// unused where the identity's rate is shared by its episodes (Lambda environments).
    pub per_min: f64,
    /// The operations it uses, as bits over the identity's `ops` (a job skips optional steps).
    pub mask: u64,
    /// Which of its platform's hosts it runs on (the kernel its user agent names).
    pub host: u8,
}

impl Episode {
    /// Issue time of the credential it presents at `t`: its start, and every `rotate` after.
    pub fn issued_at(&self, t: Millis, rotate: Millis) -> Millis {
        if rotate == Millis::MAX || t <= self.start {
            self.start
        } else {
            self.start + (t - self.start) / rotate * rotate
        }
    }

    fn overlaps(&self, t0: Millis) -> bool {
        self.start < t0 + MINUTE && self.end > t0
    }
}

/// How an archetype's calls spread over time.
#[derive(Clone, Debug)]
enum Shape {
    /// Each episode at its own rate; long-running ones follow the day (`utc_offset_h`).
    PerEpisode { utc_offset_h: Option<i64> },
    /// One rate for the identity, spread over the episodes alive (a function's environments),
    /// following the day, multiplied in bursts (`per_min` of a burst window is its factor).
    Shared { per_min: f64, utc_offset_h: i64, bursts: Vec<Window> },
    /// No episodes: a static key from fixed addresses at a rate that follows the day.
    Keyed { per_min: f64, utc_offset_h: i64 },
}

/// What a cloud archetype does beyond the fields every identity has.
#[derive(Clone, Debug)]
pub(crate) struct CloudPlan {
    /// In start order.
    pub episodes: Vec<Episode>,
    /// Episodes before it ended before the minute drafted last (a hint: ends are not sorted).
    next_live: usize,
    shape: Shape,
    /// Called once as each episode starts, in order: assuming the job's role, a cold start
    /// reading its secrets, an instance reading its tags.
    init: Vec<Op>,
    /// Weight of each of the identity's `ops`.
    weights: Vec<f64>,
    /// `ops[weekly_from..]` are only used on `weekly_day` (low-volume keys).
    weekly_from: usize,
    weekly_day: i64,
    /// The user agent of the init calls, when not the identity's own.
    init_agent: Option<UserAgent>,
    /// The SSM agent beside an instance's application, for `ssm:` calls.
    ssm_agent: Option<UserAgent>,
}

impl CloudPlan {
    /// About how many calls a minute it makes, averaged over a day.
    pub fn nominal_per_min(&self) -> f64 {
        match &self.shape {
            // The diurnal curve averages 0.45 of its peak.
            Shape::Keyed { per_min, .. } | Shape::Shared { per_min, .. } => per_min * 0.45,
            Shape::PerEpisode { .. } => {
                let busy: f64 = self.episodes.iter().map(|e| e.per_min * (e.end - e.start) as f64).sum();
                match (self.episodes.first(), self.episodes.last()) {
                    (Some(a), Some(b)) if b.end > a.start => busy / (b.end - a.start) as f64,
                    _ => 0.0,
                }
            }
        }
    }

    /// The episode a call at `t` belongs to: the one in progress that started last, or the
    /// last one before `t`, or the first.
    pub fn episode_at(&self, t: Millis) -> Option<&Episode> {
        let started = self.episodes.partition_point(|e| e.start <= t);
        let running = self.episodes[..started].iter().rev().take(64).find(|e| e.end > t);
        running.or(self.episodes[..started].last()).or(self.episodes.first())
    }

    /// Index of an operation among those in `mask` (by weight), for a call on `weekday`.
    fn pick(&self, mask: u64, weekday: i64, rng: &mut Rng) -> usize {
        let usable = |i: usize| (mask >> i.min(63)) & 1 == 1 && (i < self.weekly_from || weekday == self.weekly_day);
        let total: f64 = (0..self.weights.len()).filter(|&i| usable(i)).map(|i| self.weights[i]).sum();
        let mut x = rng.random::<f64>() * total;
        let mut last = 0;
        for i in (0..self.weights.len()).filter(|&i| usable(i)) {
            last = i;
            x -= self.weights[i];
            if x < 0.0 {
                return i;
            }
        }
        last
    }

    /// The user agent a call of `action` goes out with, before the host and the upgrade.
    fn agent_for(&self, who: &Identity, action: &str, init: bool) -> UserAgent {
        match (init, self.ssm_agent) {
            (true, _) if self.init_agent.is_some() => self.init_agent.unwrap_or(UserAgent::Fixed("unknown")),
            (_, Some(ssm)) if action.starts_with("ssm:UpdateInstanceInformation") => ssm,
            _ => who.user_agents.first().copied().unwrap_or(UserAgent::Fixed("unknown")),
        }
    }
}

/// `n` identities: the classic mix for 45 % of them, then the cloud archetypes ([`MIX`]).
pub(crate) fn build(n: usize, days: u32, sim_start: Millis, rng: &mut Rng) -> Vec<Identity> {
    let percents: Vec<usize> = MIX.iter().map(|&(_, pct)| pct).collect();
    let counts = super::split(n, &percents);
    let end = sim_start + i64::from(days) * DAY;
    let mut pop = super::build(counts[0], days, sim_start, rng);
    for who in &mut pop {
        modernise(who, sim_start, end, rng);
    }
    for (&(archetype, _), &count) in MIX.iter().zip(&counts).skip(1) {
        for i in 0..count {
            let serial = pop.len();
            let cal = Calendar { sim_start, end, days };
            pop.push(build_one(archetype, i, serial, &cal, rng));
        }
    }
    pop
}

/// The run's bounds.
struct Calendar {
    sim_start: Millis,
    end: Millis,
    days: u32,
}

impl Calendar {
    /// When an identity's SDK upgrade comes: for some, a moment after its first day.
    fn upgrade(&self, rng: &mut Rng) -> Millis {
        if self.days >= 2 && rng.random_bool(SDK_UPGRADE_P) {
            self.sim_start + rng.random_range(DAY..i64::from(self.days) * DAY)
        } else {
            Millis::MAX
        }
    }
}

/// A classic identity in the cloud estate: its AWS clients are the current ones, naming the
/// call in their user agent, and some upgrade mid-run.
fn modernise(who: &mut Identity, sim_start: Millis, end: Millis, rng: &mut Rng) {
    let mut modern = false;
    for agent in &mut who.user_agents {
        let client = match *agent {
            UserAgent::Fixed("aws-sdk-go/1.44") => Client::GoV2,
            UserAgent::Fixed("Boto3/1.34 Python/3.11") => Client::Boto3,
            UserAgent::Fixed("aws-sdk-java/2.25") => Client::Java,
            UserAgent::Fixed("aws-cli/2.15") => Client::Cli,
            UserAgent::Fixed("aws-sdk-js/3.540") => Client::JsV3,
            _ => continue,
        };
        *agent = UserAgent::sdk(client, Platform::Server);
        modern = true;
    }
    if modern {
        let days = ((end - sim_start) / DAY) as u32;
        who.sdk_upgrade_at = Calendar { sim_start, end, days }.upgrade(rng);
    }
}

/// What an archetype's builder settles beyond the common fields.
struct Built {
    id: String,
    kind: PrincipalType,
    ops: Vec<Op>,
    weights: Vec<f64>,
    ips: Vec<[u8; 4]>,
    agents: Vec<UserAgent>,
    credential: CredentialPlan,
    plan: CloudPlan,
}

fn build_one(archetype: Archetype, i: usize, serial: usize, cal: &Calendar, rng: &mut Rng) -> Identity {
    let team = *TEAMS.choose(rng).unwrap_or(&"platform");
    let tenant = if rng.random_bool(0.85) { TENANTS[0] } else { TENANTS[1] };
    let built = match archetype {
        Archetype::CiRunner => ci_runner(serial, cal, rng),
        Archetype::Serverless if i % 10 < 7 => lambda(serial, cal, rng),
        Archetype::Serverless => fargate(serial, cal, rng),
        Archetype::AutoscaledFleet => fleet(serial, cal, rng),
        Archetype::LowVolumeKey => low_volume_key(i, serial, cal, rng),
        Archetype::Terraform => terraform(serial, cal, rng),
        // The classic archetype is built by the classic population's builder, never here.
        Archetype::WeeklyJob | Archetype::Classic => weekly_job(serial, cal, rng),
    };
    let total: f64 = built.weights.iter().sum();
    let mut acc = 0.0;
    let cdf = built
        .weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect();
    let day_factor = (0..=cal.days).map(|_| rng.random_range(0.8..1.2)).collect();
    Identity {
        id: built.id,
        kind: built.kind,
        owner: Some(format!("team-{team}")),
        tenant,
        ops: built.ops,
        cdf,
        ips: built.ips,
        user_agents: built.agents,
        credential: built.credential,
        behaviour: Behaviour::Cloud(Box::new(built.plan)),
        bucket: format!("{team}-data-{serial:04}"),
        salt: rng.random(),
        day_factor,
        emitted: 0,
        active_from: Millis::MIN,
        active_until: Millis::MAX,
        registered: true,
        archetype,
        sdk_upgrade_at: cal.upgrade(rng),
    }
}

/// One operation of a recipe with its weight; the first of each recipe is never skipped.
#[derive(Clone, Copy)]
struct Step {
    op: Op,
    weight: f64,
}

const fn step(action: &'static str, reads: bool, object: bool, weight: f64) -> Step {
    Step { op: op(action, reads, object), weight }
}

/// What CI jobs deploy.
const CI_RECIPES: &[&[Step]] = &[
    // A container image pushed to ECR, then the ECS service rolled.
    &[
        step("ecr:GetAuthorizationToken", false, false, 1.0),
        step("ecr:BatchCheckLayerAvailability", false, false, 3.0),
        step("ecr:InitiateLayerUpload", false, false, 2.0),
        step("ecr:UploadLayerPart", false, false, 8.0),
        step("ecr:CompleteLayerUpload", false, false, 2.0),
        step("ecr:PutImage", false, false, 1.0),
        step("ecs:DescribeTaskDefinition", false, false, 1.0),
        step("ecs:RegisterTaskDefinition", false, false, 1.0),
        step("ecs:UpdateService", false, false, 1.0),
        step("ecs:DescribeServices", false, false, 4.0),
    ],
    // A static site synced to S3 behind CloudFront.
    &[
        step("s3:PutObject", false, true, 12.0),
        step("s3:ListObjectsV2", false, false, 2.0),
        step("s3:DeleteObject", false, true, 1.0),
        step("cloudfront:CreateInvalidation", false, false, 1.0),
        step("cloudfront:GetInvalidation", false, false, 2.0),
    ],
    // A Lambda function shipped.
    &[
        step("lambda:UpdateFunctionCode", false, false, 1.0),
        step("s3:PutObject", false, true, 1.0),
        step("lambda:GetFunction", false, false, 3.0),
        step("lambda:PublishVersion", false, false, 1.0),
        step("lambda:UpdateAlias", false, false, 1.0),
        step("lambda:GetFunctionConfiguration", false, false, 3.0),
    ],
    // A CloudFormation (SAM) stack deployed.
    &[
        step("cloudformation:DescribeStacks", false, false, 4.0),
        step("s3:PutObject", false, true, 2.0),
        step("cloudformation:CreateChangeSet", false, false, 1.0),
        step("cloudformation:DescribeChangeSet", false, false, 3.0),
        step("cloudformation:ExecuteChangeSet", false, false, 1.0),
        step("cloudformation:DescribeStackEvents", false, false, 6.0),
    ],
];

/// Many workflows check who they are first.
const CI_CHECK: Step = step("sts:GetCallerIdentity", false, false, 0.5);
const ASSUME_WEB_IDENTITY: Op = op("sts:AssumeRoleWithWebIdentity", false, false);
const REPOS: &[&str] = &["web", "api", "checkout", "images", "docs-site", "mobile-bff", "data-pipeline", "search"];

/// What Terraform reads to plan, its state backend, and the IAM changes an apply makes.
const TF_READS: &[Step] = &[
    step("iam:GetRole", false, false, 6.0),
    step("iam:ListRolePolicies", false, false, 3.0),
    step("iam:GetRolePolicy", false, false, 3.0),
    step("iam:ListAttachedRolePolicies", false, false, 3.0),
    step("iam:GetPolicy", false, false, 2.0),
    step("iam:GetPolicyVersion", false, false, 2.0),
    step("sts:GetCallerIdentity", false, false, 1.0),
    step("s3:GetBucketPolicy", false, false, 1.0),
    step("s3:GetBucketVersioning", false, false, 1.0),
    step("ec2:DescribeVpcs", false, false, 1.0),
    step("ec2:DescribeSubnets", false, false, 2.0),
    step("ec2:DescribeSecurityGroups", false, false, 2.0),
    step("lambda:GetFunction", false, false, 1.0),
    step("dynamodb:DescribeTable", false, false, 1.0),
];
const TF_STATE: &[Step] = &[
    step("s3:GetObject", true, true, 1.0),
    step("s3:PutObject", false, true, 0.5),
    step("dynamodb:GetItem", true, false, 1.0),
    step("dynamodb:PutItem", false, false, 0.5),
    step("dynamodb:DeleteItem", false, false, 0.5),
];
const TF_CHANGES: &[Step] = &[
    step("iam:CreateRole", false, false, 0.3),
    step("iam:PutRolePolicy", false, false, 0.4),
    step("iam:AttachRolePolicy", false, false, 0.4),
    step("iam:TagRole", false, false, 0.3),
    step("iam:DeleteRolePolicy", false, false, 0.1),
    step("iam:DetachRolePolicy", false, false, 0.1),
];
const STACKS: &[&str] = &["network", "iam", "platform", "data", "edge"];

/// What weekly jobs do.
const WEEKLY_RECIPES: &[&[Step]] = &[
    // Prune old snapshots.
    &[
        step("ec2:DescribeSnapshots", false, false, 3.0),
        step("ec2:DeleteSnapshot", false, false, 5.0),
        step("rds:DescribeDBClusterSnapshots", false, false, 2.0),
        step("rds:DeleteDBClusterSnapshot", false, false, 2.0),
    ],
    // A cost report mailed to the team.
    &[
        step("ce:GetCostAndUsage", true, false, 4.0),
        step("ce:GetCostForecast", true, false, 1.0),
        step("s3:PutObject", false, true, 1.0),
        step("ses:SendEmail", false, false, 0.5),
    ],
    // An access review export.
    &[
        step("iam:ListUsers", false, false, 2.0),
        step("iam:ListAccessKeys", false, false, 6.0),
        step("iam:GetAccessKeyLastUsed", false, false, 6.0),
        step("iam:ListRoles", false, false, 2.0),
        step("s3:PutObject", false, true, 1.0),
    ],
    // Logs exported to the archive bucket.
    &[
        step("logs:DescribeLogGroups", false, false, 2.0),
        step("logs:CreateExportTask", false, false, 4.0),
        step("logs:DescribeExportTasks", false, false, 4.0),
        step("s3:ListObjectsV2", false, false, 1.0),
    ],
    // A restore drill.
    &[
        step("backup:ListRecoveryPointsByBackupVault", false, false, 3.0),
        step("rds:DescribeDBInstances", false, false, 2.0),
        step("backup:StartRestoreJob", false, false, 1.0),
        step("backup:DescribeRestoreJob", false, false, 4.0),
    ],
];
const WEEKLY_NAMES: &[&str] = &["snapshot-prune", "cost-report", "access-review", "log-archive", "restore-drill"];

/// What functions call per invocation, and once per cold start.
const FUNCTION_OPS: &[Op] = &[
    op("dynamodb:GetItem", true, false),
    op("dynamodb:PutItem", false, false),
    op("dynamodb:Query", true, false),
    op("dynamodb:UpdateItem", false, false),
    op("s3:GetObject", true, true),
    op("s3:PutObject", false, true),
    op("sqs:SendMessage", false, false),
    op("sns:Publish", false, false),
    op("events:PutEvents", false, false),
    op("states:StartExecution", false, false),
    op("kinesis:PutRecord", false, false),
    op("firehose:PutRecordBatch", false, false),
    op("xray:PutTraceSegments", false, false),
];
const FUNCTION_INIT: &[Op] = &[
    op("secretsmanager:GetSecretValue", true, false),
    op("ssm:GetParameter", true, false),
    op("kms:Decrypt", false, false),
];
const FUNCTION_NAMES: &[&str] =
    &["orders-api", "thumbnailer", "webhook-ingest", "stripe-events", "email-render", "pdf-export", "auth-hook"];
const TASK_NAMES: &[&str] = &["queue-worker", "report-builder", "sync-agent", "crawler"];

/// What an instance does as it boots, and its SSM agent's check-in.
const INSTANCE_BOOT: &[Op] = &[op("ec2:DescribeTags", false, false), op("ssm:UpdateInstanceInformation", false, false)];
const FLEET_NAMES: &[&str] = &["web-asg", "api-asg", "batch-nodes", "eks-nodes", "render-farm"];

/// Operations low-volume keys choose from: many services, none that changes privileges, and
/// none of what a stolen key's reconnaissance calls (`s3:ListBuckets`, IAM listings).
const LOW_VOLUME_OPS: &[Op] = &[
    op("s3:GetObject", true, true),
    op("s3:PutObject", false, true),
    op("s3:ListObjectsV2", false, false),
    op("s3:HeadObject", false, true),
    op("s3:GetBucketLocation", false, false),
    op("dynamodb:GetItem", true, false),
    op("dynamodb:Query", true, false),
    op("dynamodb:PutItem", false, false),
    op("dynamodb:DescribeTable", false, false),
    op("sqs:SendMessage", false, false),
    op("sqs:GetQueueUrl", false, false),
    op("sqs:ReceiveMessage", true, false),
    op("sns:Publish", false, false),
    op("kms:Decrypt", false, false),
    op("kms:GenerateDataKey", false, false),
    op("secretsmanager:GetSecretValue", true, false),
    op("ssm:GetParameter", true, false),
    op("ssm:GetParametersByPath", true, false),
    op("ec2:DescribeInstances", false, false),
    op("ec2:DescribeRegions", false, false),
    op("ec2:DescribeSnapshots", false, false),
    op("ec2:DescribeVolumes", false, false),
    op("cloudwatch:GetMetricData", true, false),
    op("cloudwatch:PutMetricData", false, false),
    op("cloudwatch:DescribeAlarms", false, false),
    op("logs:FilterLogEvents", true, false),
    op("logs:DescribeLogGroups", false, false),
    op("lambda:Invoke", true, false),
    op("lambda:ListFunctions", false, false),
    op("sts:GetCallerIdentity", false, false),
    op("route53:ListHostedZones", false, false),
    op("route53:ChangeResourceRecordSets", false, false),
    op("route53:GetChange", false, false),
    op("ses:SendEmail", false, false),
    op("ce:GetCostAndUsage", true, false),
    op("rds:DescribeDBInstances", false, false),
    op("ecr:DescribeImages", false, false),
    op("acm:ListCertificates", false, false),
    op("athena:StartQueryExecution", false, false),
    op("athena:GetQueryResults", true, false),
    op("glue:GetTable", false, false),
];
const LOW_VOLUME_NAMES: &[&str] =
    &["partner-feed", "backup-check", "legacy-cron", "dns-updater", "billing-export", "status-probe", "bi-loader"];
/// The Zipf exponent of a low-volume key's action mix.
const ZIPF_S: f64 = 1.1;
/// The office's egress network, where keys used from the organisation's own servers call from.
const OFFICE_NET: [u8; 3] = [198, 51, 100];

/// The ops of `recipes` (merged where they repeat, weights added) and their weights; bits of
/// the first op of each recipe, which every job runs.
fn merge(recipes: &[&[Step]]) -> (Vec<Op>, Vec<f64>, u64) {
    let mut ops: Vec<Op> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    let mut core = 0u64;
    for recipe in recipes {
        for (j, s) in recipe.iter().enumerate() {
            let i = match ops.iter().position(|o| o.action == s.op.action) {
                Some(i) => {
                    weights[i] += s.weight;
                    i
                }
                None => {
                    ops.push(s.op);
                    weights.push(s.weight);
                    ops.len() - 1
                }
            };
            if j == 0 {
                core |= 1 << i.min(63);
            }
        }
    }
    (ops, weights, core)
}

/// A job's steps: the core ones and each other one with probability `p`.
fn job_mask(n: usize, core: u64, p: f64, rng: &mut Rng) -> u64 {
    (0..n.min(64)).filter(|_| rng.random_bool(p)).fold(core, |m, i| m | 1 << i)
}

/// Start times of jobs on the days of the run: `per_workday` on average on working days and
/// `per_weekend_day` at weekends, at irregular times between 07:00 and 21:00 local.
fn job_starts(cal: &Calendar, per_workday: f64, per_weekend_day: f64, utc_offset_h: i64, rng: &mut Rng) -> Vec<Millis> {
    let mut starts = Vec::new();
    for day in 0..i64::from(cal.days) {
        let midnight = cal.sim_start + day * DAY;
        let rate = if weekday(midnight) >= 5 { per_weekend_day } else { per_workday };
        for _ in 0..poisson(rate, rng) {
            starts.push(midnight - utc_offset_h * HOUR + rng.random_range(7 * 60..21 * 60) * MINUTE);
        }
    }
    starts.retain(|&t| (cal.sim_start..cal.end).contains(&t));
    starts.sort_unstable();
    starts
}

/// Jobs from `starts`, each lasting `minutes` with `calls` calls on `mask_of`'s steps, on a
/// fresh address of `provider`.
fn jobs(
    starts: &[Millis],
    minutes: std::ops::RangeInclusive<i64>,
    calls: std::ops::RangeInclusive<u32>,
    provider: Provider,
    platform: Platform,
    mut mask_of: impl FnMut(&mut Rng) -> u64,
    rng: &mut Rng,
) -> Vec<Episode> {
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let length = rng.random_range(minutes.clone()) * MINUTE + rng.random_range(0..MINUTE);
            let n = rng.random_range(calls.clone());
            Episode {
                number: k as u32 + 1,
                start,
                end: start + length,
                ip: provider.address(rng),
                per_min: f64::from(n) * MINUTE as f64 / length as f64,
                mask: mask_of(rng),
                host: rng.random_range(0..platform.hosts()),
            }
        })
        .collect()
}

fn ci_runner(serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    let repo = pick(REPOS, rng);
    let k = rng.random_range(1..=2);
    let mut recipes: Vec<&[Step]> = CI_RECIPES.sample(rng, k).copied().collect();
    let check = [CI_CHECK];
    recipes.push(&check);
    let (ops, weights, core) = merge(&recipes);
    let tool = if rng.random_bool(0.75) { Client::Cli } else { Client::Terraform };
    let offset = utc_offset(rng);
    let per_day = rng.random_range(1.0..6.0);
    let starts = job_starts(cal, per_day, per_day * 0.05, offset, rng);
    let n = ops.len();
    let episodes = jobs(
        &starts,
        2..=15,
        15..=200,
        Provider::GitHub,
        Platform::GitHubRunner,
        |rng| job_mask(n, core, 0.85, rng),
        rng,
    );
    Built {
        id: format!("gha-deploy-{repo}-{serial:04}"),
        kind: PrincipalType::ServiceAccount,
        ops,
        weights: weights.clone(),
        ips: Vec::new(),
        agents: vec![UserAgent::sdk(tool, Platform::GitHubRunner)],
        credential: CredentialPlan::RoleSession { ttl: HOUR, rotate: Millis::MAX, naming: SessionNaming::Run },
        plan: job_plan(episodes, vec![ASSUME_WEB_IDENTITY], weights, Some(oidc_agent())),
    }
}

/// The client `configure-aws-credentials` assumes a job's role with.
fn oidc_agent() -> UserAgent {
    UserAgent::sdk(Client::ConfigureAwsCredentials, Platform::GitHubRunner)
}

/// Jobs: each its own burst of calls, the first ones (`init`) as it starts.
fn job_plan(episodes: Vec<Episode>, init: Vec<Op>, weights: Vec<f64>, init_agent: Option<UserAgent>) -> CloudPlan {
    CloudPlan {
        episodes,
        next_live: 0,
        shape: Shape::PerEpisode { utc_offset_h: None },
        init,
        weights,
        weekly_from: usize::MAX,
        weekly_day: 0,
        init_agent,
        ssm_agent: None,
    }
}

fn terraform(serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    let (ops, weights, _) = merge(&[TF_READS, TF_STATE, TF_CHANGES]);
    // The changes come last, `iam:CreateRole`, `PutRolePolicy` and `AttachRolePolicy` first.
    let plan_steps = ops.iter().position(|o| o.action == TF_CHANGES[0].op.action).unwrap_or(ops.len());
    let all_plan: u64 = (1 << plan_steps) - 1;
    let offset = utc_offset(rng);
    let per_week = rng.random_range(2.0..5.0);
    let starts = job_starts(cal, per_week / 5.0, 0.0, offset, rng);
    let n = ops.len();
    let apply = move |rng: &mut Rng| {
        // Half the runs apply changes: one to four IAM changes.
        if !rng.random_bool(0.5) {
            return all_plan;
        }
        let mut mask = all_plan | (1 << (plan_steps + rng.random_range(0..3)));
        for i in plan_steps..n {
            if rng.random_bool(0.3) {
                mask |= 1 << i.min(63);
            }
        }
        mask
    };
    let episodes = jobs(&starts, 3..=12, 60..=300, Provider::GitHub, Platform::GitHubRunner, apply, rng);
    Built {
        id: format!("tf-{}-{serial:04}", pick(STACKS, rng)),
        kind: PrincipalType::ServiceAccount,
        ops,
        weights: weights.clone(),
        ips: Vec::new(),
        agents: vec![UserAgent::sdk(Client::Terraform, Platform::GitHubRunner)],
        credential: CredentialPlan::RoleSession { ttl: HOUR, rotate: Millis::MAX, naming: SessionNaming::Run },
        plan: job_plan(episodes, vec![ASSUME_WEB_IDENTITY], weights, Some(oidc_agent())),
    }
}

fn weekly_job(serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    let k = rng.random_range(0..WEEKLY_RECIPES.len());
    let (ops, weights, core) = merge(&[WEEKLY_RECIPES[k]]);
    let all: u64 = (1 << ops.len()) - 1;
    // Once a week: the same day, the same hour (±10 min).
    let (day, hour) = (rng.random_range(0..7), rng.random_range(0..24));
    let offset = utc_offset(rng);
    let starts: Vec<Millis> = (0..i64::from(cal.days))
        .map(|d| cal.sim_start + d * DAY)
        .filter(|&midnight| weekday(midnight) == day)
        .map(|midnight| {
            midnight + (hour - offset) * HOUR + rng.random_range(-10..=10) * MINUTE + rng.random_range(0..MINUTE)
        })
        .filter(|&t| (cal.sim_start..cal.end).contains(&t))
        .collect();
    let on_github = rng.random_bool(0.4);
    let (provider, platform, client) = if on_github {
        (Provider::GitHub, Platform::GitHubRunner, Client::Cli)
    } else {
        (Provider::Amazon, Platform::Fargate, *[Client::GoV2, Client::Boto3].choose(rng).unwrap_or(&Client::GoV2))
    };
    let episodes = jobs(&starts, 10..=50, 50..=500, provider, platform, |_| all | core, rng);
    let (credential, init, init_agent) = if on_github {
        (
            CredentialPlan::RoleSession { ttl: HOUR, rotate: Millis::MAX, naming: SessionNaming::Run },
            vec![ASSUME_WEB_IDENTITY],
            Some(oidc_agent()),
        )
    } else {
        (
            CredentialPlan::RoleSession { ttl: 6 * HOUR, rotate: Millis::MAX, naming: SessionNaming::Task },
            Vec::new(),
            None,
        )
    };
    Built {
        id: format!("cron-weekly-{}-{serial:04}", WEEKLY_NAMES[k]),
        kind: PrincipalType::ServiceAccount,
        ops,
        weights: weights.clone(),
        ips: Vec::new(),
        agents: vec![UserAgent::sdk(client, platform)],
        credential,
        plan: job_plan(episodes, init, weights, init_agent),
    }
}

/// Episodes back to back from before the start to the end, each lasting `life`, with
/// `per_min` each, on fresh addresses of `provider`.
fn chain(
    cal: &Calendar,
    life: std::ops::RangeInclusive<i64>,
    per_min: f64,
    platform: Platform,
    mut address: impl FnMut(&mut Rng) -> [u8; 4],
    rng: &mut Rng,
) -> Vec<Episode> {
    let mut episodes = Vec::new();
    let mut t = cal.sim_start - rng.random_range(0..*life.start()) * MINUTE;
    while t < cal.end {
        let end = t + rng.random_range(life.clone()) * MINUTE;
        episodes.push(Episode {
            number: 0,
            start: t,
            end,
            ip: address(rng),
            per_min: per_min * rng.random_range(0.7..1.3),
            mask: u64::MAX,
            host: rng.random_range(0..platform.hosts()),
        });
        t = end;
    }
    episodes
}

/// Sorts episodes by start and numbers them from 1.
fn numbered(mut episodes: Vec<Episode>) -> Vec<Episode> {
    episodes.sort_by_key(|e| e.start);
    for (k, e) in episodes.iter_mut().enumerate() {
        e.number = k as u32 + 1;
    }
    episodes
}

fn random_weights(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(0.5..3.0)).collect()
}

fn lambda(serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    let k = rng.random_range(2..=6);
    let ops: Vec<Op> = FUNCTION_OPS.sample(rng, k).copied().collect();
    let k = rng.random_range(1..=2);
    let init: Vec<Op> = FUNCTION_INIT.sample(rng, k).copied().collect();
    let weights = random_weights(ops.len(), rng);
    let client = if rng.random_bool(0.55) { Client::JsV3 } else { Client::Boto3 };
    let per_min = rng.random_range(0.5..20.0);
    let utc_offset_h = utc_offset(rng);
    // Environments: one to three always warm, replaced every 15 min to 2.5 h (cold starts).
    let mut envs = Vec::new();
    for _ in 0..1 + (per_min / 8.0) as usize {
        envs.extend(chain(cal, 15..=150, 0.0, Platform::Lambda, |rng| Provider::Amazon.address(rng), rng));
    }
    // Bursts: up to three a day, 5–30 min at 5–20 times the rate, each with cold starts of its own.
    let mut bursts = Vec::new();
    for day in 0..i64::from(cal.days) {
        for _ in 0..rng.random_range(0..=3) {
            let start = cal.sim_start + day * DAY + rng.random_range(0..24 * 60) * MINUTE;
            let end = start + rng.random_range(5..=30) * MINUTE;
            let factor = rng.random_range(5.0..20.0);
            for _ in 0..1 + (factor / 5.0) as usize {
                let cold = start + rng.random_range(0..30) * SECOND;
                envs.push(Episode {
                    number: 0,
                    start: cold,
                    end: end + rng.random_range(5..=15) * MINUTE,
                    ip: Provider::Amazon.address(rng),
                    per_min: 0.0,
                    mask: u64::MAX,
                    host: rng.random_range(0..Platform::Lambda.hosts()),
                });
            }
            bursts.push(Window { start, end, per_min: factor });
        }
    }
    let name = pick(FUNCTION_NAMES, rng);
    Built {
        id: format!("fn-{name}-{serial:04}"),
        kind: PrincipalType::ServiceAccount,
        ops,
        weights: weights.clone(),
        ips: Vec::new(),
        agents: vec![UserAgent::sdk(client, Platform::Lambda)],
        credential: CredentialPlan::RoleSession { ttl: 6 * HOUR, rotate: Millis::MAX, naming: SessionNaming::Function },
        plan: CloudPlan {
            episodes: numbered(envs),
            next_live: 0,
            shape: Shape::Shared { per_min, utc_offset_h, bursts },
            init,
            weights,
            weekly_from: usize::MAX,
            weekly_day: 0,
            init_agent: None,
            ssm_agent: None,
        },
    }
}

fn fargate(serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    let ops = choose_ops(CLOUD, rng.random_range(1..=3), rng.random_range(3..=8), rng);
    let weights = random_weights(ops.len(), rng);
    let client = *[Client::GoV2, Client::Boto3, Client::Java].choose(rng).unwrap_or(&Client::GoV2);
    let per_min = rng.random_range(0.5..6.0);
    let mut tasks = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        tasks.extend(chain(cal, 60..=12 * 60, per_min, Platform::Fargate, |rng| Provider::Amazon.address(rng), rng));
    }
    Built {
        id: format!("task-{}-{serial:04}", pick(TASK_NAMES, rng)),
        kind: PrincipalType::ServiceAccount,
        ops,
        weights: weights.clone(),
        ips: Vec::new(),
        agents: vec![UserAgent::sdk(client, Platform::Fargate)],
        credential: CredentialPlan::RoleSession { ttl: 6 * HOUR, rotate: 3 * HOUR, naming: SessionNaming::Task },
        plan: CloudPlan {
            episodes: numbered(tasks),
            next_live: 0,
            shape: Shape::PerEpisode { utc_offset_h: Some(utc_offset(rng)) },
            init: vec![op("secretsmanager:GetSecretValue", true, false)],
            weights,
            weekly_from: usize::MAX,
            weekly_day: 0,
            init_agent: None,
            ssm_agent: None,
        },
    }
}

/// 30–50 /24 networks in one or two large blocks of AWS's space, as an autoscaling group
/// spread over a region's subnets gets.
fn fleet_networks(rng: &mut Rng) -> Vec<[u8; 3]> {
    let large: Vec<(u32, u32)> = Provider::Amazon.ranges().large(1 << 16).collect();
    let k = rng.random_range(1..=2);
    let blocks: Vec<(u32, u32)> = large.sample(rng, k).copied().collect();
    let want = rng.random_range(30..=50);
    let mut nets: Vec<[u8; 3]> = Vec::new();
    while nets.len() < want && !blocks.is_empty() {
        let (base, size) = blocks[rng.random_range(0..blocks.len())];
        let [a, b, c, _] = (base + rng.random_range(0..size / 256) * 256).to_be_bytes();
        if !nets.contains(&[a, b, c]) {
            nets.push([a, b, c]);
        }
    }
    if nets.is_empty() {
        nets.push([3, 80, 0]);
    }
    nets
}

fn fleet(serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    let mut ops = choose_ops(CLOUD, rng.random_range(1..=3), rng.random_range(3..=8), rng);
    ops.push(op("ssm:UpdateInstanceInformation", false, false));
    let mut weights = random_weights(ops.len(), rng);
    if let Some(w) = weights.last_mut() {
        *w = 0.5;
    }
    let client = *[Client::GoV2, Client::Java, Client::Boto3].choose(rng).unwrap_or(&Client::GoV2);
    let nets = fleet_networks(rng);
    let address = |rng: &mut Rng| {
        let [a, b, c] = nets[rng.random_range(0..nets.len())];
        [a, b, c, rng.random_range(4..=250)]
    };
    let per_min = rng.random_range(0.3..2.0);
    let utc_offset_h = utc_offset(rng);
    // Instances always up, replaced every 6–24 h, and more each day from the morning to the evening.
    let base = rng.random_range(4..=10);
    let mut instances = Vec::new();
    for _ in 0..base {
        instances.extend(chain(cal, 6 * 60..=24 * 60, per_min, Platform::Ec2, address, rng));
    }
    for day in 0..i64::from(cal.days) {
        let midnight = cal.sim_start + day * DAY - utc_offset_h * HOUR;
        for _ in 0..rng.random_range(base / 2..=base * 3 / 2) {
            let start = midnight + rng.random_range(7 * 60..10 * 60) * MINUTE;
            instances.push(Episode {
                number: 0,
                start,
                end: midnight + rng.random_range(18 * 60..22 * 60) * MINUTE,
                ip: address(rng),
                per_min: per_min * rng.random_range(0.7..1.3),
                mask: u64::MAX,
                host: rng.random_range(0..Platform::Ec2.hosts()),
            });
        }
    }
    instances.retain(|e| e.start < cal.end && e.end > cal.sim_start);
    Built {
        id: format!("fleet-{}-{serial:04}", pick(FLEET_NAMES, rng)),
        kind: PrincipalType::Workload,
        ops,
        weights: weights.clone(),
        ips: Vec::new(),
        agents: vec![UserAgent::sdk(client, Platform::Ec2)],
        credential: CredentialPlan::RoleSession { ttl: 6 * HOUR, rotate: HOUR, naming: SessionNaming::Instance },
        plan: CloudPlan {
            episodes: numbered(instances),
            next_live: 0,
            shape: Shape::PerEpisode { utc_offset_h: Some(utc_offset_h) },
            init: INSTANCE_BOOT.to_vec(),
            weights,
            weekly_from: usize::MAX,
            weekly_day: 0,
            init_agent: None,
            ssm_agent: Some(UserAgent::sdk(Client::SsmAgent, Platform::Ec2)),
        },
    }
}

fn low_volume_key(i: usize, serial: usize, cal: &Calendar, rng: &mut Rng) -> Built {
    // A quarter trickle all day (0.2–0.5 calls a minute), the rest make 5–60 calls a day.
    let trickle = i % 4 == 1;
    let k = rng.random_range(10..=30);
    let mut ops: Vec<Op> = LOW_VOLUME_OPS.sample(rng, k).copied().collect();
    ops.shuffle(rng);
    if trickle {
        // A trickle reads objects: it is what a slow exfiltration hides in.
        ops.retain(|o| o.action != "s3:GetObject");
        ops.insert(rng.random_range(0..2), LOW_VOLUME_OPS[0]);
    }
    // One or two services of the tail (not those of its two most frequent actions) only on
    // one day of the week, moved to the end.
    let top = [service(ops[0].action), service(ops[1].action)];
    let tail: Vec<&str> = ops[2..].iter().map(|o| service(o.action)).filter(|s| !top.contains(s)).collect();
    let k = rng.random_range(1..=2);
    let weekly: Vec<&str> = tail.sample(rng, k).copied().collect();
    let (daily, weekly_ops): (Vec<Op>, Vec<Op>) = ops.iter().partition(|o| !weekly.contains(&service(o.action)));
    let weekly_from = daily.len();
    let ops: Vec<Op> = daily.into_iter().chain(weekly_ops).collect();
    let weights: Vec<f64> = (0..ops.len()).map(|r| 1.0 / ((r + 1) as f64).powf(ZIPF_S)).collect();
    let per_day = if trickle { rng.random_range(0.2..0.5) * 1440.0 } else { rng.random_range(5.0..60.0) };
    let at_office = rng.random_bool(0.6);
    let ips = if at_office {
        let n = rng.random_range(1..=2);
        (0..n).map(|_| [OFFICE_NET[0], OFFICE_NET[1], OFFICE_NET[2], rng.random_range(2..250)]).collect()
    } else {
        vec![Provider::Amazon.address(rng)]
    };
    let platform = if at_office { Platform::Server } else { Platform::Ec2 };
    let client = *[Client::GoV2, Client::JsV3, Client::Boto3, Client::Cli].choose(rng).unwrap_or(&Client::GoV2);
    let kind = if i.is_multiple_of(2) { PrincipalType::ServiceAccount } else { PrincipalType::ApiKey };
    Built {
        id: format!("iamuser-{}-{serial:04}", pick(LOW_VOLUME_NAMES, rng)),
        kind,
        ops,
        weights: weights.clone(),
        ips,
        agents: vec![UserAgent::sdk(client, platform)],
        credential: static_key(cal.sim_start, rng),
        plan: CloudPlan {
            episodes: Vec::new(),
            next_live: 0,
            // The day curve averages 0.45 of its peak.
            shape: Shape::Keyed { per_min: per_day / 1440.0 / 0.45, utc_offset_h: utc_offset(rng) },
            init: Vec::new(),
            weights,
            weekly_from,
            weekly_day: rng.random_range(0..5),
            init_agent: None,
            ssm_agent: None,
        },
    }
}

fn service(action: &str) -> &str {
    action.split_once(':').map_or(action, |(s, _)| s)
}

/// Business-hours curve in the local time of `utc_offset_h`: nights at 20 % of the peak.
fn diurnal(t0: Millis, utc_offset_h: i64) -> f64 {
    let local_h = (t0 + utc_offset_h * HOUR).rem_euclid(DAY) as f64 / HOUR as f64;
    let bump = if (7.0..19.0).contains(&local_h) { (std::f64::consts::PI * (local_h - 7.0) / 12.0).sin() } else { 0.0 };
    0.2 + 0.8 * bump
}

/// Appends a cloud archetype's benign calls for the minute starting at `t0`.
pub(super) fn emit_minute(
    who: &mut Identity,
    index: u32,
    sim_start: Millis,
    t0: Millis,
    rng: &mut Rng,
    out: &mut Vec<Draft>,
) {
    let first = out.len();
    let factor = who.day_factor(sim_start, t0);
    let day = weekday(t0);
    let Behaviour::Cloud(plan) = &mut who.behaviour else {
        return;
    };
    while plan.episodes.get(plan.next_live).is_some_and(|e| e.end <= t0) {
        plan.next_live += 1;
    }
    let live: Vec<usize> = (plan.next_live..plan.episodes.len())
        .take_while(|&k| plan.episodes[k].start < t0 + MINUTE)
        .filter(|&k| plan.episodes[k].overlaps(t0))
        .collect();
    let who = &*who;
    let Some(plan) = who.cloud() else {
        return;
    };
    for &k in &live {
        let e = &plan.episodes[k];
        if (t0..t0 + MINUTE).contains(&e.start) {
            for (j, &init) in plan.init.iter().enumerate() {
                let t = (e.start + j as Millis * 300).min(t0 + MINUTE - 1);
                out.push(episode_draft(who, plan, e, index, t, init, true, rng));
            }
        }
    }
    match &plan.shape {
        Shape::PerEpisode { utc_offset_h } => {
            let shape = utc_offset_h.map_or(1.0, |h| diurnal(t0, h));
            for &k in &live {
                let e = &plan.episodes[k];
                let (lo, hi) = (e.start.max(t0), e.end.min(t0 + MINUTE));
                let lambda = e.per_min * shape * factor * (hi - lo) as f64 / MINUTE as f64;
                for _ in 0..poisson(lambda, rng) {
                    let t = lo + rng.random_range(0..hi - lo);
                    let i = plan.pick(e.mask, day, rng);
                    out.push(episode_draft(who, plan, e, index, t, who.ops[i], false, rng));
                }
            }
        }
        Shape::Shared { per_min, utc_offset_h, bursts } => {
            let burst: f64 = bursts.iter().filter(|w| (w.start..w.end).contains(&t0)).map(|w| w.per_min).product();
            let lambda = per_min * diurnal(t0, *utc_offset_h) * burst * factor;
            if !live.is_empty() {
                for _ in 0..poisson(lambda, rng) {
                    let e = &plan.episodes[live[rng.random_range(0..live.len())]];
                    let (lo, hi) = (e.start.max(t0), e.end.min(t0 + MINUTE));
                    let t = lo + rng.random_range(0..hi - lo);
                    let i = plan.pick(u64::MAX, day, rng);
                    out.push(episode_draft(who, plan, e, index, t, who.ops[i], false, rng));
                }
            }
        }
        Shape::Keyed { per_min, utc_offset_h } => {
            for _ in 0..poisson(per_min * diurnal(t0, *utc_offset_h) * factor, rng) {
                let t = t0 + rng.random_range(0..MINUTE);
                let op = who.ops[plan.pick(u64::MAX, day, rng)];
                let ip = *who.ips.choose(rng).unwrap_or(&[10, 0, 0, 1]);
                let agent = plan.agent_for(who, op.action, false);
                out.push(who.call(index, t, op, ip, agent, rng));
            }
        }
    }
    fail_some(&mut out[first..], rng);
}

/// Benign machines' rare failed and denied calls, never more than a few in a minute.
fn fail_some(drafts: &mut [Draft], rng: &mut Rng) {
    let mut bad = 0;
    for d in drafts {
        if bad >= MACHINE_MAX_BAD_PER_MINUTE {
            return;
        }
        let x: f64 = rng.random();
        if x < MACHINE_FAILURE_P + MACHINE_DENIED_P {
            d.outcome = if x < MACHINE_FAILURE_P { Outcome::Failure } else { Outcome::Denied };
            d.bytes_out = None;
            bad += 1;
        }
    }
}

/// A call of the identity's own in episode `e` at `t`, by weight among the episode's steps.
pub(super) fn episode_call(who: &Identity, e: &Episode, index: u32, t: Millis, rng: &mut Rng) -> Draft {
    let Some(plan) = who.cloud() else {
        return who.call(index, t, who.ops[0], e.ip, UserAgent::Fixed("unknown"), rng);
    };
    let i = plan.pick(e.mask, weekday(t), rng);
    episode_draft(who, plan, e, index, t, who.ops[i], false, rng)
}

#[allow(clippy::too_many_arguments)]
fn episode_draft(
    who: &Identity,
    plan: &CloudPlan,
    e: &Episode,
    index: u32,
    t: Millis,
    op: Op,
    init: bool,
    rng: &mut Rng,
) -> Draft {
    let rotate = match who.credential {
        CredentialPlan::RoleSession { rotate, .. } => rotate,
        _ => Millis::MAX,
    };
    Draft {
        time: t,
        who: index,
        action: op.action,
        outcome: Outcome::Success,
        ip: e.ip,
        user_agent: who.agent_at(plan.agent_for(who, op.action, init), e.host, t),
        credential_issued_at: e.issued_at(t, rotate),
        session: e.number,
        delegating_user: 0,
        resource: op.object.then(|| Resource::Object(rng.random_range(0..400))),
        bytes_out: op.reads.then(|| rng.random_range(1_000..=200_000)),
        credential: CredentialUse::Own,
        attribution: Attribution::Usual,
        tag: Tag::Benign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_cloud_mix_holds_every_archetype() {
        let mut rng = Rng::seed_from_u64(5);
        let pop = build(100, 8, crate::DEFAULT_START, &mut rng);
        assert_eq!(pop.len(), 100);
        for &(archetype, _) in MIX {
            let n = pop.iter().filter(|w| w.archetype == archetype).count();
            assert!(n >= 3, "{archetype:?}: {n}");
            for w in pop.iter().filter(|w| w.archetype == archetype) {
                assert_eq!(Archetype::of(&w.id), archetype, "{}", w.id);
            }
        }
        // Fleets spread over 30 /24 networks and more.
        for w in pop.iter().filter(|w| w.archetype == Archetype::AutoscaledFleet) {
            let nets: std::collections::BTreeSet<[u8; 3]> =
                w.cloud().unwrap().episodes.iter().map(|e| [e.ip[0], e.ip[1], e.ip[2]]).collect();
            assert!(nets.len() >= 25, "{}: {}", w.id, nets.len());
        }
    }
}
