//! A throwaway Postgres cluster the chaos scenarios may stop and start at will (never the
//! developer's or CI's shared server). Built with the machine's own initdb/pg_ctl.
use std::{path::PathBuf, process::Command};

pub struct LocalPostgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
}

impl LocalPostgres {
    pub fn create() -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let data =
            std::env::temp_dir().join(format!("ironclad-chaos-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data)?;
        if is_root() {
            // initdb and postgres refuse to run as root.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Self { bin, data, port };
        cluster.pg(
            "initdb",
            &[
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "-D",
                &cluster.pgdata(),
            ],
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.pgdata()
        );
        let log = format!("{}/server.log", self.pgdata());
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.pgdata(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        )
    }

    /// `pg_ctl stop -m fast`: terminates every connection, like a crash from the app's side.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg(
            "pg_ctl",
            &["-D", &self.pgdata(), "-m", "fast", "-w", "stop"],
        )
    }

    fn pgdata(&self) -> String {
        self.data.join("pgdata").display().to_string()
    }

    fn pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args);
        run(&mut command)
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The newest installed server's bin folder (Debian keeps them in /usr/lib/postgresql/*/bin).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow::anyhow!("no initdb found under /usr/lib/postgresql/*/bin (install postgresql)")
    })
}
