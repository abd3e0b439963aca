//! An Iceberg REST catalog client (Apache Iceberg's REST catalog spec: what AWS S3 Tables, Glue's
//! Iceberg endpoint, Polaris, Lakekeeper and Nessie speak), its requests signed with AWS SigV4
//! when the endpoint needs it.
//!
//! The `iceberg-catalog-rest` crate (0.10) cannot sign a request — SigV4 is an open pull request
//! there — so the HTTP exchange is ours: the request and answer bodies are that crate's types
//! and the iceberg crate's (`TableUpdate`, `TableRequirement`, `TableMetadata`), the metadata is
//! written by the server, and the manifests and data files by the iceberg crate through Sluice's
//! own object stores, as for the other catalogs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use iceberg::io::{FileIO, FileIOBuilder, StorageFactory};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent,
};
use iceberg_catalog_rest::{
    CommitTableRequest, CommitTableResponse, CreateNamespaceRequest, CreateTableRequest,
    ListNamespaceResponse, ListTablesResponse, LoadTableResult, NamespaceResponse,
};
use reqwest::{Method, StatusCode};

/// How requests are signed: SigV4 for `service` in `region`, with the standard credential chain.
pub(crate) struct Signer {
    service: String,
    region: String,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    /// The credentials last provided, kept until five minutes before they expire.
    cached: tokio::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

impl Signer {
    pub(crate) fn new(
        service: &str,
        sdk: &aws_config::SdkConfig,
    ) -> std::result::Result<Self, String> {
        let credentials = sdk
            .credentials_provider()
            .ok_or("no AWS credentials to sign the catalog's requests with")?;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS region to sign the catalog's requests for")?;
        Ok(Self {
            service: service.to_string(),
            region,
            credentials,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    async fn credentials(&self) -> Result<aws_credential_types::Credentials> {
        use aws_credential_types::provider::ProvideCredentials;
        let mut cached = self.cached.lock().await;
        let fresh = |c: &aws_credential_types::Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + Duration::from_secs(300))
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self.credentials.provide_credentials().await.map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("no AWS credentials to sign the catalog's requests: {e}"),
            )
            .with_retryable(true)
        })?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// `request` with SigV4's headers added.
    async fn sign(&self, request: &mut reqwest::Request) -> Result<()> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = self.credentials().await?.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("signing: {e}")))?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("signing: {e}")))?
            .into_parts();
        let (add, _) = instructions.into_parts();
        for h in add {
            let value = reqwest::header::HeaderValue::from_str(h.value()).map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("signing: header {}: {e}", h.name()),
                )
            })?;
            request.headers_mut().insert(h.name(), value);
        }
        Ok(())
    }
}

/// `GET /v1/config`'s answer (the crate keeps its own private).
#[derive(serde::Deserialize)]
struct CatalogConfig {
    #[serde(default)]
    overrides: HashMap<String, String>,
    #[serde(default)]
    defaults: HashMap<String, String>,
}

/// A failed request's body, as the spec gives it (the crate's keeps its fields private).
#[derive(serde::Deserialize)]
struct ErrorResponse {
    error: ErrorModel,
}

#[derive(serde::Deserialize)]
struct ErrorModel {
    message: String,
    #[serde(default, rename = "type")]
    kind: String,
}

/// A catalog behind the REST protocol.
pub(crate) struct RestCatalog {
    http: reqwest::Client,
    /// `https://host/path/v1/` followed by the server's prefix, if it gave one.
    root: String,
    signer: Option<Signer>,
    io: FileIO,
    runtime: iceberg::Runtime,
    /// Created tables ask for this location (`None`: the server chooses, as S3 Tables does).
    pub(crate) fixed_location: bool,
}

impl std::fmt::Debug for RestCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestCatalog")
            .field("root", &self.root)
            .finish()
    }
}

/// `segment` as one path segment of a URL.
fn seg(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A namespace as the spec puts it in a path: its levels joined by the unit separator (0x1F).
fn ns_path(ns: &NamespaceIdent) -> String {
    seg(&ns.as_ref().join("\u{1f}"))
}

impl RestCatalog {
    /// The catalog at `uri` (`https://host/path`), in `warehouse` when given; its configuration
    /// (the path prefix) asked of the server first.
    pub(crate) async fn connect(
        uri: &str,
        warehouse: Option<&str>,
        signer: Option<Signer>,
        storage: Arc<dyn StorageFactory>,
    ) -> Result<Self> {
        let http = client()?;
        let base = format!("{}/v1/", uri.trim_end_matches('/'));
        let mut catalog = Self {
            http,
            root: base.clone(),
            signer,
            io: FileIOBuilder::new(storage).build(),
            runtime: iceberg::Runtime::try_current()?,
            fixed_location: !warehouse.is_some_and(|w| w.starts_with("arn:aws:s3tables:")),
        };
        let query = warehouse
            .map(|w| format!("?warehouse={}", seg(w)))
            .unwrap_or_default();
        let config: CatalogConfig = catalog
            .call(Method::GET, &format!("config{query}"), None, &[])
            .await?;
        let prefix = config
            .overrides
            .get("prefix")
            .or_else(|| config.defaults.get("prefix"))
            .filter(|p| !p.is_empty());
        if let Some(p) = prefix {
            // The prefix is a path of its own (`catalogs/x`); each level encoded as a segment.
            let levels: Vec<String> = p.trim_matches('/').split('/').map(seg).collect();
            catalog.root = format!("{base}{}/", levels.join("/"));
        }
        Ok(catalog)
    }

    /// `method path` with `body` (JSON), its answer parsed; a status in `absent` is `NotFound`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        absent: &[StatusCode],
    ) -> Result<T> {
        let (status, bytes) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(status_error(status, &bytes, absent));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!(
                    "the REST catalog's answer to {path} is not what the spec says: {e}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                ),
            )
        })
    }

    /// One request; a connection failure, a 429 or a 5xx tried again twice (GETs and HEADs
    /// only: a POST's outcome is unknown after a 5xx, and the invocation's retry decides).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, bytes::Bytes)> {
        let url = format!("{}{path}", self.root);
        let idempotent = method == Method::GET || method == Method::HEAD;
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), &url);
            if let Some(b) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            let mut req = req
                .build()
                .map_err(|e| Error::new(ErrorKind::Unexpected, format!("{url}: {e}")))?;
            if let Some(s) = &self.signer {
                s.sign(&mut req).await?;
            }
            let answer = match self.http.execute(req).await {
                Ok(r) => {
                    let status = r.status();
                    r.bytes().await.map(|b| (status, b))
                }
                Err(e) => Err(e),
            };
            let again = match &answer {
                Ok((s, _)) => *s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error(),
                Err(_) => true,
            };
            if !(again && idempotent && attempt < 3) {
                return answer.map_err(|e| {
                    Error::new(
                        ErrorKind::Unexpected,
                        format!("the REST catalog at {url}: {e}"),
                    )
                    .with_retryable(true)
                });
            }
            tokio::time::sleep(wait).await;
            wait *= 4;
        }
    }

    fn table(&self, ident: TableIdent, loaded: LoadTableResult) -> Result<Table> {
        let mut t = Table::builder()
            .identifier(ident)
            .metadata(loaded.metadata)
            .file_io(self.io.clone())
            .runtime(self.runtime.clone());
        if let Some(loc) = loaded.metadata_location {
            t = t.metadata_location(loc);
        }
        t.build()
    }

    fn table_path(t: &TableIdent) -> String {
        format!(
            "namespaces/{}/tables/{}",
            ns_path(t.namespace()),
            seg(t.name())
        )
    }
}

/// The HTTP client: rustls with aws-lc-rs and the system's roots (as the AWS SDK's), bounded.
fn client() -> Result<reqwest::Client> {
    let fail = |m: String| Error::new(ErrorKind::Unexpected, m);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(format!("the REST catalog's HTTP client: {e}")))
}

/// A failed answer as the iceberg crate's error: what the spec's status codes mean.
fn status_error(status: StatusCode, body: &[u8], absent: &[StatusCode]) -> Error {
    let message = serde_json::from_slice::<ErrorResponse>(body)
        .map(|e| format!("{} ({})", e.error.message, e.error.kind))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let text = format!("the REST catalog answered {status}: {message}");
    let kind = if absent.contains(&status) {
        ErrorKind::TableNotFound
    } else if status == StatusCode::CONFLICT && message.contains("AlreadyExists") {
        ErrorKind::TableAlreadyExists
    } else if status == StatusCode::CONFLICT {
        ErrorKind::CatalogCommitConflicts
    } else {
        ErrorKind::Unexpected
    };
    let retry = status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || kind == ErrorKind::CatalogCommitConflicts;
    Error::new(kind, text).with_retryable(retry)
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::FeatureUnsupported,
        format!("{what} is not something sluice does to a REST catalog"),
    )
}

#[async_trait::async_trait]
impl Catalog for RestCatalog {
    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        let query = parent
            .map(|p| format!("?parent={}", ns_path(p)))
            .unwrap_or_default();
        let list: ListNamespaceResponse = self
            .call(Method::GET, &format!("namespaces{query}"), None, &[])
            .await?;
        Ok(list.namespaces)
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        let body = serde_json::to_vec(&CreateNamespaceRequest {
            namespace: namespace.clone(),
            properties,
        })
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let made: NamespaceResponse = self
            .call(Method::POST, "namespaces", Some(body), &[])
            .await?;
        Ok(Namespace::with_properties(made.namespace, made.properties))
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        let got: NamespaceResponse = self
            .call(
                Method::GET,
                &format!("namespaces/{}", ns_path(namespace)),
                None,
                &[],
            )
            .await?;
        Ok(Namespace::with_properties(got.namespace, got.properties))
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        let path = format!("namespaces/{}", ns_path(namespace));
        match self.send(Method::GET, &path, None).await? {
            (s, _) if s.is_success() => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (s, b) => Err(status_error(s, &b, &[])),
        }
    }

    async fn update_namespace(
        &self,
        _namespace: &NamespaceIdent,
        _properties: HashMap<String, String>,
    ) -> Result<()> {
        Err(unsupported("updating a namespace"))
    }

    async fn drop_namespace(&self, _namespace: &NamespaceIdent) -> Result<()> {
        Err(unsupported("dropping a namespace"))
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        let list: ListTablesResponse = self
            .call(
                Method::GET,
                &format!("namespaces/{}/tables", ns_path(namespace)),
                None,
                &[],
            )
            .await?;
        Ok(list.identifiers)
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        let body = serde_json::to_vec(&CreateTableRequest {
            name: creation.name,
            location: creation.location.filter(|_| self.fixed_location),
            schema: creation.schema,
            partition_spec: creation.partition_spec,
            write_order: creation.sort_order,
            stage_create: Some(false),
            properties: creation.properties,
        })
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let made: LoadTableResult = self
            .call(
                Method::POST,
                &format!("namespaces/{}/tables", ns_path(namespace)),
                Some(body),
                &[],
            )
            .await?;
        self.table(ident, made)
    }

    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        let loaded: LoadTableResult = self
            .call(
                Method::GET,
                &Self::table_path(table),
                None,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        self.table(table.clone(), loaded)
    }

    async fn drop_table(&self, _table: &TableIdent) -> Result<()> {
        Err(unsupported("dropping a table"))
    }

    async fn purge_table(&self, _table: &TableIdent) -> Result<()> {
        Err(unsupported("purging a table"))
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        match self
            .send(Method::HEAD, &Self::table_path(table), None)
            .await?
        {
            (s, _) if s.is_success() => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (s, b) => Err(status_error(s, &b, &[])),
        }
    }

    async fn rename_table(&self, _src: &TableIdent, _dest: &TableIdent) -> Result<()> {
        Err(unsupported("renaming a table"))
    }

    async fn register_table(&self, _table: &TableIdent, _location: String) -> Result<Table> {
        Err(unsupported("registering a table"))
    }

    async fn update_table(&self, mut commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let body = serde_json::to_vec(&CommitTableRequest {
            identifier: Some(ident.clone()),
            requirements: commit.take_requirements(),
            updates: commit.take_updates(),
        })
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let done: CommitTableResponse = self
            .call(Method::POST, &Self::table_path(&ident), Some(body), &[])
            .await?;
        self.table(
            ident,
            LoadTableResult {
                metadata_location: Some(done.metadata_location),
                metadata: done.metadata,
                config: HashMap::new(),
                storage_credentials: None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_names_are_one_path_segment_each() {
        let ns = NamespaceIdent::from_vec(vec!["a b".into(), "c/d".into()]).expect("ns");
        assert_eq!(ns_path(&ns), "a%20b%1Fc%2Fd");
        let t = TableIdent::new(NamespaceIdent::new("analytics".into()), "clicks".into());
        assert_eq!(
            RestCatalog::table_path(&t),
            "namespaces/analytics/tables/clicks"
        );
    }

    #[test]
    fn statuses_mean_what_the_spec_says() {
        let body = br#"{"error":{"message":"Commit failed: branch main changed","type":"CommitFailedException","code":409}}"#;
        let e = status_error(StatusCode::CONFLICT, body, &[]);
        assert_eq!(e.kind(), ErrorKind::CatalogCommitConflicts);
        assert!(e.to_string().contains("branch main changed"), "{e}");
        let e = status_error(StatusCode::NOT_FOUND, b"{}", &[StatusCode::NOT_FOUND]);
        assert_eq!(e.kind(), ErrorKind::TableNotFound);
        let e = status_error(StatusCode::FORBIDDEN, b"denied", &[]);
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        assert!(!e.retryable());
        assert!(status_error(StatusCode::SERVICE_UNAVAILABLE, b"", &[]).retryable());
    }
}
