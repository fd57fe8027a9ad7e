//! `tollgate-revocation`: serve the revocation service, or manage its API keys.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tollgate_revocation::{apikeys, App, Config, Issuers, Scope};

#[derive(Parser)]
#[command(name = "tollgate-revocation", version, about = "Tollgate's event-sourced revocation service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (config: defaults → --config/TOLLGATE_CONFIG file → TOLLGATE_* env → flags).
    Serve {
        /// TOML configuration file (or TOLLGATE_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (default ./data/revocation).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen address (default 127.0.0.1:8790).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage API keys (works while the service runs; changes apply within a second).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Args)]
struct DataDir {
    /// Data directory (default: TOLLGATE_DATA_DIR, else ./data/revocation).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    fn resolve(self) -> PathBuf {
        self.data_dir
            .or_else(|| std::env::var_os("TOLLGATE_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| Config::default().data_dir)
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret once (stdout); details go to stderr.
    Create {
        #[command(flatten)]
        dir: DataDir,
        /// A name for the key (unique among unrevoked keys).
        #[arg(long)]
        name: String,
        /// Scope: events:write, denylist:read, metrics:read or admin (repeat or comma-separate).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// An issuer whose tokens the key may revoke (repeatable; events:write keys need
        /// this or --all-issuers).
        #[arg(long = "issuer", conflicts_with = "all_issuers")]
        issuers: Vec<String>,
        /// The key may revoke tokens of every issuer, and post events without `iss`
        /// (which revoke an identifier for every issuer).
        #[arg(long)]
        all_issuers: bool,
    },
    /// Revoke a key by id or name.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        /// The key's id.
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        id: Option<String>,
        /// The key's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never secrets).
    List {
        #[command(flatten)]
        dir: DataDir,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve(file: Option<PathBuf>, data_dir: Option<PathBuf>, listen: Option<std::net::SocketAddr>) -> Result<()> {
    let file = file.or_else(|| std::env::var_os("TOLLGATE_CONFIG").map(PathBuf::from));
    let mut config = match &file {
        Some(p) => Config::from_toml(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)?,
        None => Config::default(),
    };
    for name in config.apply_env(std::env::vars())? {
        tracing::warn!(variable = %name, "ignoring an environment variable this service does not read");
    }
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    if let Some(l) = listen {
        config.listen = l;
    }
    config.validate()?;
    tracing::info!(config = ?config, "configuration");
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = App::open(config).await?;
    // One machine-readable line on stdout, for supervisors and tests.
    println!("tollgate-revocation listening on {addr}");
    app.serve(listener, shutdown_signal()).await?;
    Ok(())
}

fn keys(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create { dir, name, scopes, issuers, all_issuers } => {
            let mut parsed = Vec::new();
            for s in &scopes {
                match Scope::parse(s.trim()) {
                    Some(x) => parsed.push(x),
                    None => bail!("unknown scope {s:?} (events:write, denylist:read, metrics:read, admin)"),
                }
            }
            let scope = match (all_issuers, issuers.is_empty()) {
                (true, _) => Issuers::Any,
                (false, false) => Issuers::Only(issuers),
                (false, true) => Issuers::None,
            };
            let (rec, secret) = apikeys::create(&dir.resolve(), &name, &parsed, &scope)?;
            eprintln!(
                "created key {} ({}) with scopes {}{}; the secret is shown once:",
                rec.id,
                rec.name,
                rec.scopes.join(","),
                describe(&rec.issuer_scope())
            );
            println!("{secret}");
        }
        KeysCommand::Revoke { dir, id, name } => {
            let which = id.or(name).context("give --id or --name")?;
            let n = apikeys::revoke(&dir.resolve(), &which)?;
            eprintln!("revoked {n} key(s)");
        }
        KeysCommand::List { dir } => {
            for k in apikeys::list(&dir.resolve())? {
                let state = if k.revoked.is_some() { "revoked" } else { "active" };
                let issuers = match k.issuer_scope() {
                    Issuers::None => "-".to_string(),
                    Issuers::Any => "*".to_string(),
                    Issuers::Only(l) => l.join(","),
                };
                println!("{}\t{}\t{}\t{}\t{}", k.id, k.name, k.scopes.join(","), issuers, state);
            }
        }
    }
    Ok(())
}

fn describe(i: &Issuers) -> String {
    match i {
        Issuers::None => String::new(),
        Issuers::Any => " for every issuer".into(),
        Issuers::Only(l) => format!(" for issuers {}", l.join(",")),
    }
}

fn main() -> Result<()> {
    // Everything this process creates (the data directory, sled's files, checkpoints,
    // keys) is private to its user.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, data_dir, listen } => {
            init_logging();
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(serve(config, data_dir, listen))
        }
        Command::Keys { command } => keys(command),
    }
}
