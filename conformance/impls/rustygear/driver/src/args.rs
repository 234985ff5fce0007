// The driver contract's command line (conformance/drivers/README.md), without a parser crate.
use std::collections::HashMap;
use std::process::exit;

pub struct Args {
    pub role: String,
    pub values: HashMap<String, String>,
    pub flags: Vec<String>,
}

impl Args {
    pub fn parse(prog: &str) -> Args {
        let mut argv = std::env::args().skip(1);
        let role = argv.next().unwrap_or_default();
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        while let Some(name) = argv.next() {
            let key = match name.strip_prefix("--") {
                Some(key) => key.to_string(),
                None => usage(prog, &format!("unexpected argument {name}")),
            };
            if key == "background" || key == "exceptions" {
                flags.push(key);
                continue;
            }
            match argv.next() {
                Some(value) => {
                    values.insert(key, value);
                }
                None => usage(prog, &format!("{name} needs a value")),
            }
        }
        let args = Args { role, values, flags };
        if !["client", "worker"].contains(&args.role.as_str())
            || ["host", "port", "function"].iter().any(|k| !args.values.contains_key(*k))
            || !["high", "normal", "low"].contains(&args.get("priority", "normal").as_str())
        {
            usage(prog, "client|worker --host H --port P --function F [options]");
        }
        if args.values.contains_key("tls-ca") {
            eprintln!("unsupported: TLS (this driver does not set up the library's TLS)");
            exit(5);
        }
        args
    }

    pub fn get(&self, key: &str, default: &str) -> String {
        self.values.get(key).cloned().unwrap_or_else(|| default.to_string())
    }

    pub fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }

    pub fn seconds(&self, key: &str, default: f64) -> std::time::Duration {
        let text = self.get(key, &default.to_string());
        match text.parse::<f64>() {
            Ok(value) if value >= 0.0 => std::time::Duration::from_secs_f64(value),
            _ => usage("driver", &format!("--{key} needs a number of seconds, not {text:?}")),
        }
    }
}

pub fn usage(prog: &str, message: &str) -> ! {
    eprintln!("{prog}: {message}");
    exit(1)
}
