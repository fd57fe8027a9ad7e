//! `tollgate`: verify tokens against a JWKS, generate keys, mint test tokens, and run
//! the shared conformance suite.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use tollgate_core::{Jwks, Policy, Verifier};

mod conformance;
mod keys;
mod mint;

#[derive(Parser)]
#[command(name = "tollgate", version, about = "Verify, mint and inspect ES256/RS256 JWTs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a token; print its claims, or the typed reason (exit 1) on rejection.
    Verify {
        /// JWKS file, or http(s) URL.
        #[arg(long)]
        jwks: String,
        /// Allowed issuer (repeatable).
        #[arg(long = "iss")]
        issuers: Vec<String>,
        /// Allowed audience (repeatable).
        #[arg(long = "aud")]
        audiences: Vec<String>,
        /// Allowed algorithm (repeatable; default ES256 and RS256).
        #[arg(long = "alg")]
        algorithms: Vec<String>,
        /// Clock skew tolerated on exp/nbf, seconds.
        #[arg(long, default_value_t = 0)]
        leeway: u64,
        /// Required header typ.
        #[arg(long)]
        typ: Option<String>,
        /// Required claim (repeatable; default exp).
        #[arg(long = "require")]
        required: Vec<String>,
        /// Verify as of this time (seconds since the epoch) instead of the clock.
        #[arg(long)]
        now: Option<i64>,
        /// The token, or `-` to read it from standard input.
        token: String,
    },
    /// Generate a key pair: a PKCS#8 PEM private key and its public JWKS.
    Keygen {
        /// es256 or rs256.
        alg: String,
        /// Output prefix: writes PREFIX.pem and PREFIX.jwks.json.
        #[arg(long, default_value = "tollgate")]
        out: PathBuf,
    },
    /// Mint a signed test token (with jti, iat, exp) and print it.
    Mint {
        /// PKCS#8 PEM private key (from `tollgate keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Subject.
        #[arg(long)]
        sub: String,
        /// Lifetime: 90s, 15m, 2h, 1d.
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// Session id claim.
        #[arg(long)]
        sid: Option<String>,
        /// Issuer claim.
        #[arg(long)]
        iss: Option<String>,
        /// Audience claim.
        #[arg(long)]
        aud: Option<String>,
        /// Token id (random when absent).
        #[arg(long)]
        jti: Option<String>,
        /// Header typ (default JWT).
        #[arg(long)]
        typ: Option<String>,
        /// Extra claim k=v (repeatable; JSON values are taken as JSON).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Issue as of this time (seconds since the epoch).
        #[arg(long)]
        now: Option<u64>,
    },
    /// Run conformance case files (JSON Lines); one result line per case, then totals.
    Conformance {
        /// Case files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Verify { jwks, issuers, audiences, algorithms, leeway, typ, required, now, token } => {
            let token = if token == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s.trim().to_string()
            } else {
                token
            };
            let jwks_bytes = load_jwks(&jwks)?;
            let keys = Jwks::from_json(&jwks_bytes).map_err(|e| anyhow::anyhow!("{jwks}: {e}"))?;
            let mut cfg = json!({"leeway_seconds": leeway, "typ": typ});
            if !issuers.is_empty() {
                cfg["issuers"] = json!(issuers);
            }
            if !audiences.is_empty() {
                cfg["audiences"] = json!(audiences);
            }
            if !algorithms.is_empty() {
                cfg["algorithms"] = json!(algorithms);
            }
            if !required.is_empty() {
                cfg["required_claims"] = json!(required);
            }
            let policy = Policy::from_json(&serde_json::to_vec(&cfg)?).map_err(|e| anyhow::anyhow!("policy: {e}"))?;
            let verifier = Verifier::new(keys, policy);
            let now = now.unwrap_or_else(|| unix_now() as i64);
            match verifier.verify(&token, now, None) {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v.claims.to_map())?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!(
                        "{}",
                        json!({"error": "invalid_token", "reason": e.reason().as_str(), "detail": e.to_string()})
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Keygen { alg, out } => {
            let key = keys::generate(&alg)?;
            let pem_path = out.with_extension("pem");
            let jwks_path = PathBuf::from(format!("{}.jwks.json", out.display()));
            write_private(&pem_path, key.to_pkcs8_pem()?.as_bytes())?;
            let jwks = json!({"keys": [key.public_jwk()]});
            std::fs::write(&jwks_path, serde_json::to_string_pretty(&jwks)? + "\n")?;
            println!(
                "{}",
                json!({"private_key": pem_path, "jwks": jwks_path, "kid": key.kid(), "alg": key.alg().name()})
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Mint { key, sub, ttl, sid, iss, aud, jti, typ, claims, now } => {
            let key = keys::read(&key)?;
            let token = mint::mint(&mint::MintArgs {
                key: &key,
                sub: &sub,
                ttl_seconds: mint::parse_ttl(&ttl)?,
                now: now.unwrap_or_else(unix_now),
                iss: iss.as_deref(),
                aud: aud.as_deref(),
                sid: sid.as_deref(),
                jti: jti.as_deref(),
                typ: typ.as_deref(),
                claims: &claims,
            })?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Conformance { files } => {
            let ok = conformance::run(&files, &mut std::io::stdout().lock())?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Reads a JWKS from a file or an http(s) URL (bounded size and time).
fn load_jwks(src: &str) -> Result<Vec<u8>> {
    if src.starts_with("http://") || src.starts_with("https://") {
        let resp = ureq::get(src)
            .timeout(std::time::Duration::from_secs(10))
            .call()
            .with_context(|| format!("fetching {src}"))?;
        let mut body = Vec::new();
        resp.into_reader().take(tollgate_core::jwk::MAX_JWKS_BYTES as u64 + 1).read_to_end(&mut body)?;
        Ok(body)
    } else {
        std::fs::read(src).with_context(|| format!("reading {src}"))
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
