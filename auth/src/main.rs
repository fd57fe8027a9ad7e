//! `tollgate-auth`: run the login service, or manage accounts from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tollgate_auth::app::{self, AppState};
use tollgate_auth::clock::SystemClock;
use tollgate_auth::config::{Config, Overrides};
use tollgate_auth::{password, sessions};

#[derive(Parser)]
#[command(name = "tollgate-auth", version, about = "Tollgate's login service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// TOML configuration file (or TOLLGATE_AUTH_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory for the SQLite database (default ./data/auth).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://…); default SQLite in the data directory.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (config: defaults → file → TOLLGATE_AUTH_* env → flags).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address (default 127.0.0.1:8791).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Send cookies without `Secure` (plain-HTTP localhost development only; refused
        /// unless listening on a loopback address).
        #[arg(long)]
        insecure_dev_cookies: bool,
    },
    /// Manage accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Replace an account's roles (its older access tokens are revoked at the edge).
    SetRoles {
        #[command(flatten)]
        common: Common,
        /// The account's email.
        #[arg(long)]
        email: String,
        /// Comma-separated roles, e.g. `user,admin`.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Mark an account's email address as verified (an operator's decision; a social
    /// login with the same verified address may then be linked to it, with the password).
    VerifyEmail {
        #[command(flatten)]
        common: Common,
        /// The account's email.
        #[arg(long)]
        email: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter = std::env::var("TOLLGATE_AUTH_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { common, listen, insecure_dev_cookies } => {
                serve(common, listen, insecure_dev_cookies).await
            }
            Command::Users { command: UsersCommand::SetRoles { common, email, roles } } => {
                set_roles(common, email, roles).await
            }
            Command::Users { command: UsersCommand::VerifyEmail { common, email } } => {
                verify_email(common, email).await
            }
        }
    })
}

fn load(common: Common, listen: Option<SocketAddr>, insecure_dev_cookies: bool) -> Result<Config> {
    let overrides = Overrides {
        config_file: common.config,
        data_dir: common.data_dir,
        listen,
        database_url: common.database_url,
        insecure_dev_cookies,
    };
    // The log filter is not a setting of the service's configuration.
    let env = std::env::vars().filter(|(k, _)| k != "TOLLGATE_AUTH_LOG");
    Ok(Config::load(&overrides, env)?)
}

async fn serve(common: Common, listen: Option<SocketAddr>, insecure_dev_cookies: bool) -> Result<()> {
    let config = load(common, listen, insecure_dev_cookies)?;
    tracing::info!(config = %config.redacted(), "configuration");
    let addr = config.listen;
    let state = Arc::new(AppState::new(config, Arc::new(SystemClock)).await?);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    println!("tollgate-auth listening on {bound}");
    tracing::info!(%bound, engine = ?state.store.engine(), "listening");
    app::run(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

async fn set_roles(common: Common, email: String, roles: Vec<String>) -> Result<()> {
    let config = load(common, None, false)?;
    let state = AppState::new(config, Arc::new(SystemClock)).await?;
    let email = password::normalise_email(&email).map_err(|e| anyhow::anyhow!(e.detail))?;
    let Some(user) = state.store.user_by_email(&email).await? else { bail!("no account has the email {email}") };
    let roles: Vec<String> = roles.into_iter().map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect();
    let (_, seq) =
        sessions::revoke_user(&state, &user, false, "role_change").await.map_err(|e| anyhow::anyhow!(e.detail))?;
    state.store.set_roles(&user.id, &roles, 0).await?;
    eprintln!("{email}: roles now [{}] (older access tokens revoked, seq {seq})", roles.join(", "));
    Ok(())
}

async fn verify_email(common: Common, email: String) -> Result<()> {
    let config = load(common, None, false)?;
    let state = AppState::new(config, Arc::new(SystemClock)).await?;
    let email = password::normalise_email(&email).map_err(|e| anyhow::anyhow!(e.detail))?;
    let Some(user) = state.store.user_by_email(&email).await? else { bail!("no account has the email {email}") };
    state.store.set_email_verified(&user.id).await?;
    eprintln!("{email}: email address marked verified");
    Ok(())
}
