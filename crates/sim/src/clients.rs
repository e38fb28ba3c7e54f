//! User agents as clients send them. The classic estate's identities send one fixed string
//! each; in the cloud estate, current AWS clients name the call in their user agent, as they
//! do in the wild: the SDKs for Go v2 and JavaScript v3 append `api/<service>#<version>`, the
//! CLI v2 `command/<service>.<command>`, Terraform's AWS provider its Go SDK's `api/` part,
//! boto3 metadata that changes with the call (`md/awscrt#` on S3 transfers, `m/` feature ids
//! on paginated calls). Each also names its platform (kernel, runtime, `exec-env/` on Lambda
//! and Fargate) and changes its version when its identity upgrades the SDK mid-run.
//!
//! A [`UserAgent`] is rendered when its event is written, from the call's action, so no draw
//! of the generator is spent on it.

use std::fmt::Write as _;

/// What a call's `source.user_agent` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserAgent {
    /// The same string on every call.
    Fixed(&'static str),
    /// A current AWS client, rendered per call.
    Sdk(Sdk),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sdk {
    pub client: Client,
    pub platform: Platform,
    /// After the identity's SDK upgrade: the next minor version.
    pub upgraded: bool,
    /// Which of the platform's hosts (kernel builds) the call runs on.
    pub host: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    /// AWS CLI v2: `command/<service>.<command>`.
    Cli,
    /// AWS SDK for Go v2: `api/<service>#<module version>`.
    GoV2,
    /// AWS SDK for JavaScript v3: `api/<client>#<version>`.
    JsV3,
    /// boto3 (botocore): metadata that changes with the call.
    Boto3,
    /// AWS SDK for Java v2: nothing per call.
    Java,
    /// Terraform's AWS provider (Go SDK v2 underneath).
    Terraform,
    /// `aws-actions/configure-aws-credentials` assuming the job's role (JavaScript v3).
    ConfigureAwsCredentials,
    /// The SSM agent on an instance (Go SDK v1).
    SsmAgent,
}

/// Where the client runs: its kernel, distribution and execution environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Platform {
    /// A server of the organisation's own (on premises, a VM).
    Server,
    /// A GitHub-hosted runner (an Azure VM).
    GitHubRunner,
    Lambda,
    Ec2,
    Fargate,
    /// A rented VM at a hosting provider: where stolen credentials are tried from.
    Vps,
}

impl Platform {
    fn kernels(self) -> &'static [&'static str] {
        match self {
            Platform::Server => &["5.15.0-105-generic", "5.15.0-107-generic"],
            Platform::GitHubRunner => &["6.5.0-1021-azure", "6.5.0-1022-azure", "6.8.0-1014-azure"],
            Platform::Lambda => {
                &["5.10.219-229.866.amzn2.x86_64", "5.10.220-209.869.amzn2.x86_64", "5.10.223-211.872.amzn2.x86_64"]
            }
            Platform::Ec2 => &["6.1.94-99.176.amzn2023.x86_64", "6.1.96-102.177.amzn2023.x86_64"],
            Platform::Fargate => &["5.10.219-208.866.amzn2.x86_64", "5.10.220-209.869.amzn2.x86_64"],
            Platform::Vps => &["6.8.0-45-generic", "5.15.0-122-generic"],
        }
    }

    fn kernel(self, host: u8) -> &'static str {
        let k = self.kernels();
        k[usize::from(host) % k.len()]
    }

    /// How many distinct hosts (kernel builds) the platform has.
    pub fn hosts(self) -> u8 {
        self.kernels().len() as u8
    }
}

/// Versions before and after an upgrade, chosen by [`Sdk::upgraded`].
fn version(upgraded: bool, before: &'static str, after: &'static str) -> &'static str {
    if upgraded { after } else { before }
}

impl UserAgent {
    /// A client that renders per call, not yet upgraded, on the platform's first host.
    pub fn sdk(client: Client, platform: Platform) -> UserAgent {
        UserAgent::Sdk(Sdk { client, platform, upgraded: false, host: 0 })
    }

    /// The same client on `host`, upgraded if `upgraded`; a fixed string stays as it is.
    pub fn at(self, host: u8, upgraded: bool) -> UserAgent {
        match self {
            UserAgent::Sdk(s) => UserAgent::Sdk(Sdk { host, upgraded, ..s }),
            fixed => fixed,
        }
    }

    /// Appends the user agent of a call of `action` (`"<service>:<Operation>"`) to `out`.
    pub fn render(self, action: &str, out: &mut String) {
        match self {
            UserAgent::Fixed(s) => out.push_str(s),
            UserAgent::Sdk(s) => s.render(action, out),
        }
    }
}

impl Sdk {
    fn render(self, action: &str, out: &mut String) {
        let (service, operation) = action.split_once(':').unwrap_or((action, action));
        let kernel = self.platform.kernel(self.host);
        let up = self.upgraded;
        let _ = match self.client {
            Client::Cli => {
                let distro = if self.platform == Platform::Ec2 { "amzn.2023" } else { "ubuntu.22" };
                write!(
                    out,
                    "aws-cli/{} Python/{} Linux/{kernel} exe/x86_64.{distro} prompt/off command/",
                    version(up, "2.15.30", "2.17.12"),
                    version(up, "3.11.8", "3.11.9"),
                )
                .and_then(|()| cli_command(service, operation, out))
            }
            Client::GoV2 => write!(out, "aws-sdk-go-v2/{} ", version(up, "1.30.3", "1.31.0"))
                .and_then(|()| go_tail(self, service, out)),
            Client::Terraform => write!(
                out,
                "APN/1.0 HashiCorp/1.0 Terraform/1.9.2 (+https://www.terraform.io) terraform-provider-aws/{} \
                 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/{} ",
                version(up, "5.58.0", "5.62.0"),
                version(up, "1.30.3", "1.30.4"),
            )
            .and_then(|()| go_tail(self, service, out)),
            Client::JsV3 => {
                let v = version(up, "3.614.0", "3.637.0");
                write!(
                    out,
                    "aws-sdk-js/{v} ua/2.0 os/linux#{kernel} lang/js md/nodejs#{} api/{}#{v}",
                    version(up, "20.15.1", "20.17.0"),
                    js_client(service),
                )
                .and_then(|()| exec_env(self.platform, "nodejs20.x", out))
            }
            Client::Boto3 => {
                let v = version(up, "1.34.144", "1.35.10");
                let crt = if service == "s3" && operation.ends_with("Object") { " md/awscrt#0.20.11" } else { "" };
                let _ = write!(
                    out,
                    "Boto3/{v} md/Botocore#{v} ua/2.0 os/linux#{kernel} md/arch#x86_64 lang/python#3.12.4 md/pyimpl#CPython{crt}"
                );
                let _ = exec_env(self.platform, "python3.12", out);
                let paginated = operation.starts_with("List") || operation.starts_with("Describe");
                write!(out, " cfg/retry-mode#legacy Botocore/{v}{}", if paginated { " m/C" } else { "" })
            }
            Client::Java => write!(
                out,
                "aws-sdk-java/{} Linux/{kernel} OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. \
                 io/sync http/Apache cfg/retry-mode/legacy",
                version(up, "2.26.20", "2.27.5"),
            ),
            Client::ConfigureAwsCredentials => write!(
                out,
                "aws-sdk-js/3.609.0 ua/2.0 os/linux#{kernel} lang/js md/nodejs#20.13.1 api/sts#3.609.0 \
                 configure-aws-credentials-for-github-actions"
            ),
            Client::SsmAgent => write!(
                out,
                "aws-sdk-go/1.44.322 (go1.21.9; linux; amd64) amazon-ssm-agent/{}",
                version(up, "3.3.380.0", "3.3.551.0")
            ),
        };
    }
}

/// The Go SDK's part after its core version: platform, then the service module and its version.
fn go_tail(s: Sdk, service: &str, out: &mut String) -> std::fmt::Result {
    let (minor, patch) = module_version(service);
    let minor = minor + u32::from(s.upgraded);
    let patch = if s.upgraded { 0 } else { patch };
    write!(out, "os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/{}#1.{minor}.{patch}", go_service(service))?;
    match s.platform {
        Platform::Fargate => out.push_str(" exec-env/AWS_ECS_FARGATE"),
        Platform::Lambda => out.push_str(" exec-env/AWS_Lambda_provided.al2023"),
        _ => {}
    }
    Ok(())
}

fn exec_env(platform: Platform, runtime: &str, out: &mut String) -> std::fmt::Result {
    match platform {
        Platform::Lambda => write!(out, " exec-env/AWS_Lambda_{runtime}"),
        Platform::Fargate => write!(out, " exec-env/AWS_ECS_FARGATE"),
        _ => Ok(()),
    }
}

/// Each Go service module has its own version; a stable one per service name.
fn module_version(service: &str) -> (u32, u32) {
    let h = service.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    (20 + h % 40, (h >> 8) % 9)
}

fn go_service(service: &str) -> &str {
    match service {
        "events" => "eventbridge",
        "states" => "sfn",
        "logs" => "cloudwatchlogs",
        "ce" => "costexplorer",
        other => other,
    }
}

/// The JavaScript v3 client package a service's calls go through (`@aws-sdk/client-<name>`).
fn js_client(service: &str) -> &str {
    match service {
        "secretsmanager" => "secrets-manager",
        "events" => "eventbridge",
        "states" => "sfn",
        "logs" => "cloudwatch-logs",
        "ce" => "cost-explorer",
        other => other,
    }
}

/// The CLI command a call comes from: the high-level `s3` commands for object transfers,
/// `ecr get-login-password` for a registry token, the operation in kebab case otherwise.
fn cli_command(service: &str, operation: &str, out: &mut String) -> std::fmt::Result {
    let high_level = match (service, operation) {
        ("s3", "PutObject" | "GetObject" | "HeadObject" | "CreateMultipartUpload" | "UploadPart") => Some("s3.cp"),
        ("s3", "ListObjectsV2") => Some("s3.ls"),
        ("s3", "DeleteObject") => Some("s3.rm"),
        ("ecr", "GetAuthorizationToken") => Some("ecr.get-login-password"),
        _ => None,
    };
    if let Some(command) = high_level {
        out.push_str(command);
        return Ok(());
    }
    let service = match service {
        "s3" => "s3api",
        "states" => "stepfunctions",
        other => other,
    };
    out.push_str(service);
    out.push('.');
    for (i, c) in operation.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(ua: UserAgent, action: &str) -> String {
        let mut s = String::new();
        ua.render(action, &mut s);
        s
    }

    #[test]
    fn clients_name_the_call_as_the_real_ones_do() {
        let cli = UserAgent::sdk(Client::Cli, Platform::GitHubRunner);
        assert_eq!(
            render(cli, "s3:PutObject"),
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1021-azure exe/x86_64.ubuntu.22 prompt/off command/s3.cp"
        );
        assert!(render(cli, "sts:GetCallerIdentity").ends_with("command/sts.get-caller-identity"));
        assert!(render(cli, "ecs:UpdateService").ends_with("command/ecs.update-service"));
        let go = UserAgent::sdk(Client::GoV2, Platform::Server);
        let (s3, sqs) = (render(go, "s3:GetObject"), render(go, "sqs:SendMessage"));
        assert!(s3.starts_with("aws-sdk-go-v2/1.30.3 os/linux") && s3.contains(" api/s3#1."), "{s3}");
        assert!(sqs.contains(" api/sqs#1."), "{sqs}");
        let js = UserAgent::sdk(Client::JsV3, Platform::Lambda).at(2, true);
        let js = render(js, "secretsmanager:GetSecretValue");
        assert!(js.starts_with("aws-sdk-js/3.637.0 ") && js.contains("api/secrets-manager#3.637.0"), "{js}");
        assert!(js.contains("5.10.223-211.872") && js.ends_with("exec-env/AWS_Lambda_nodejs20.x"), "{js}");
        let boto = UserAgent::sdk(Client::Boto3, Platform::Server);
        assert!(render(boto, "s3:GetObject").contains("md/awscrt#"));
        assert!(render(boto, "dynamodb:ListTables").ends_with(" m/C"));
        assert_ne!(render(boto, "s3:GetObject"), render(boto, "kms:Decrypt"));
        assert_eq!(render(UserAgent::Fixed("curl/8.4.0"), "s3:GetObject"), "curl/8.4.0");
        // An upgrade moves the version; the Go module version moves with it.
        assert_ne!(render(go, "s3:GetObject"), render(go.at(0, true), "s3:GetObject"));
    }
}
