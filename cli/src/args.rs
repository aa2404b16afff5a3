//! Command-line arguments. Any mistake is a one-line message and exit code 2 (SPEC §7).

use std::path::PathBuf;
use std::time::Duration;

pub struct DemoArgs {
    pub duration: Duration,
    pub json: bool,
    /// The same chat over GraphQL (T5) instead of REST + WebSocket.
    pub graphql: bool,
}

pub struct WatchArgs {
    pub config: PathBuf,
    pub endpoint: String,
    /// Raw JSON text of the arg; `None` is "no arg".
    pub arg: Option<String>,
    pub duration: Option<Duration>,
}

fn duration(value: Option<&String>) -> Result<Duration, String> {
    let text = value.ok_or("--duration needs a number of seconds")?;
    let secs: f64 = text.parse().map_err(|_| format!("--duration: {text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("--duration: {text:?} is not a usable number of seconds"))
}

impl DemoArgs {
    pub fn parse(args: &[String]) -> Result<DemoArgs, String> {
        let mut out = DemoArgs { duration: Duration::from_secs(6), json: false, graphql: false };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--duration" => out.duration = duration(it.next())?,
                "--json" => out.json = true,
                "--graphql" => out.graphql = true,
                other => return Err(format!("demo: unexpected argument {other:?}")),
            }
        }
        Ok(out)
    }
}

impl WatchArgs {
    pub fn parse(args: &[String]) -> Result<WatchArgs, String> {
        let mut config = None;
        let mut positional = Vec::new();
        let mut duration_arg = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--config" => config = Some(PathBuf::from(it.next().ok_or("--config needs a file")?)),
                "--duration" => duration_arg = Some(duration(it.next())?),
                flag if flag.starts_with("--") => return Err(format!("watch: unknown option {flag:?}")),
                value => positional.push(value.to_owned()),
            }
        }
        let config = config.ok_or("watch: --config FILE is required")?;
        let mut positional = positional.into_iter();
        let endpoint = positional.next().ok_or("watch: ENDPOINT is required")?;
        let arg = positional.next();
        if let Some(extra) = positional.next() {
            return Err(format!("watch: unexpected argument {extra:?}"));
        }
        Ok(WatchArgs { config, endpoint, arg, duration: duration_arg })
    }
}
