//! Self-tests of the harness pieces that do not need qmon: certificates,
//! the Python test server (HTTP, HTTPS, IPv6), nginx and the clients. When
//! these fail, the capture/record failures are about the environment, not
//! about qmon.

use qmon_e2e::clients::{PY_PIPELINE, PY_URLLIB_GET};
use qmon_e2e::{curl, python, Env, Nginx, TestServer};

#[test]
fn python_server_serves_every_endpoint_over_tls() -> anyhow::Result<()> {
    let env = Env::new()?;
    let srv = TestServer::start("127.0.0.1", Some(&env.certs))?;
    let ca = env.ca();
    let r = curl(&["--cacert", &ca, &srv.url("/hello?tag=abc")])?.ok();
    assert_eq!(r.stdout_str(), "hello abc\n");
    let r = curl(&["--cacert", &ca, &srv.url("/chunked"), "-D", "-"])?.ok();
    let out = r.stdout_str().to_lowercase();
    assert!(out.contains("transfer-encoding: chunked"), "{out}");
    assert!(out.ends_with("chunk-one;chunk-two;chunk-three\n"), "{out}");
    let r = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &srv.url("/status/418"),
    ])?
    .ok();
    assert_eq!(r.stdout_str(), "418");
    let r = curl(&["--cacert", &ca, "--data-binary", "ping", &srv.url("/echo")])?.ok();
    assert_eq!(r.stdout_str(), "ping");
    let r = curl(&["--cacert", &ca, &srv.url("/big?n=100000")])?.ok();
    assert_eq!(r.stdout.len(), 100_000);
    let r = curl(&["--cacert", &ca, &srv.url("/slow?ms=50")])?.ok();
    assert_eq!(r.stdout_str(), "slow\n");
    let r = python(PY_URLLIB_GET, &[&srv.url("/hello?tag=py"), &ca], &[])?.ok();
    assert_eq!(r.stdout_str(), "hello py\n");
    Ok(())
}

#[test]
fn python_server_plain_ipv6_and_pipelining() -> anyhow::Result<()> {
    let env = Env::new()?;
    let srv6 = TestServer::start("::1", Some(&env.certs))?;
    let r = curl(&["--cacert", &env.ca(), &srv6.url("/hello?tag=v6")])?.ok();
    assert_eq!(r.stdout_str(), "hello v6\n");

    let plain = TestServer::start("127.0.0.1", None)?;
    let port = plain.port.to_string();
    let r = python(
        PY_PIPELINE,
        &[
            "127.0.0.1",
            &port,
            "/hello?tag=p1",
            "/chunked",
            "/status/202",
        ],
        &[],
    )?
    .ok();
    let out = r.stdout_str();
    assert_eq!(out.matches("HTTP/1.1 ").count(), 3, "{out}");
    assert!(
        out.contains("hello p1\n") && out.contains("HTTP/1.1 202"),
        "{out}"
    );
    Ok(())
}

#[test]
fn nginx_serves_tls() -> anyhow::Result<()> {
    let env = Env::new()?;
    let ng = Nginx::start(&env.path().join("nginx"), &env.certs)?;
    let r = curl(&["--cacert", &env.ca(), &ng.url("/nginx-hello")])?.ok();
    assert_eq!(r.stdout_str(), "hello from nginx\n");
    Ok(())
}
