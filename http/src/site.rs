//! Which domain a request is for, from its Host header, and the public short URL of a link.

use url::Url;

/// The hosts the server answers for, from SNOWLINK_HTTP_PUBLIC_URL and SNOWLINK_HTTP_DOMAINS.
pub struct Site {
    /// Where the links of the default domain are followed, without a trailing slash; None when
    /// not set.
    public_url: Option<String>,
    /// The host (and port) of `public_url`, in the form of domain_of().
    public_host: Option<String>,
    /// The scheme of short URLs of other domains: the public URL's, or https.
    scheme: String,
    /// The hosts whose own links are served, in the form of domain_of(); empty: any host is
    /// served as the default domain.
    domains: Vec<String>,
}

/// Where a request's Host sends it.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// The links of the default domain.
    DefaultDomain,
    /// The links of this domain.
    Domain(String),
    /// A host this server does not answer for.
    Refused,
}

impl Site {
    /// From the settings' text: a public URL (scheme, host, optional port, no path) and a list of
    /// hosts separated by commas.
    pub fn new(public_url: Option<&str>, domains: Option<&str>) -> Result<Site, String> {
        let (public_url, public_host, scheme) = match public_url {
            None => (None, None, "https".to_owned()),
            Some(text) => {
                let url = Url::parse(text)
                    .ok()
                    .filter(|url| {
                        matches!(url.scheme(), "http" | "https")
                            && url.host_str().is_some()
                            && url.path() == "/"
                            && url.query().is_none()
                            && url.fragment().is_none()
                            && url.username().is_empty()
                    })
                    .ok_or(format!(
                        "SNOWLINK_HTTP_PUBLIC_URL is \"{text}\", not an http or https URL of a \
                         host without a path, such as https://s.example.com"
                    ))?;
                let host = host_and_port(&url);
                let origin = url.origin().ascii_serialization();
                (Some(origin), Some(host), url.scheme().to_owned())
            }
        };
        let domains = match domains {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|domain| !domain.is_empty())
                .map(|domain| {
                    domain_of(domain).ok_or(format!(
                        "SNOWLINK_HTTP_DOMAINS names \"{domain}\", not a host with an optional \
                         port, such as s.example.com or localhost:8080"
                    ))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Site {
            public_url,
            public_host,
            scheme,
            domains,
        })
    }

    /// Where a request with this Host header (None: without one) is served.
    pub fn serves(&self, host: Option<&str>) -> Served {
        if self.domains.is_empty() {
            return Served::DefaultDomain;
        }
        let Some(host) = host.and_then(domain_of) else {
            return Served::Refused;
        };
        if self.public_host.as_ref() == Some(&host) {
            Served::DefaultDomain
        } else if self.domains.contains(&host) {
            Served::Domain(host)
        } else {
            Served::Refused
        }
    }

    /// The public short URL of a code in a domain (None: the default domain's, known only from
    /// SNOWLINK_HTTP_PUBLIC_URL).
    pub fn short_url(&self, domain: Option<&str>, code: &str) -> Option<String> {
        match domain {
            Some(domain) => Some(format!("{}://{domain}/{code}", self.scheme)),
            None => Some(format!("{}/{code}", self.public_url.as_ref()?)),
        }
    }
}

/// A host as the extension stores a domain (src/shortlinks/domains.rs): lower case, in punycode,
/// without the root's dot, with its port unless it is 80 or 443, which browsers leave out; None
/// for what is not a host with an optional port.
pub fn domain_of(host: &str) -> Option<String> {
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return None;
    }
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    url.host_str()?;
    Some(host_and_port(&url))
}

fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let host = host.strip_suffix('.').unwrap_or(host);
    match url.port() {
        Some(port) if port != 80 && port != 443 => format!("{host}:{port}"),
        _ => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_in_the_extension_s_form() {
        assert_eq!(domain_of("S.Example.COM").as_deref(), Some("s.example.com"));
        assert_eq!(
            domain_of("s.example.com:443").as_deref(),
            Some("s.example.com")
        );
        assert_eq!(
            domain_of("s.example.com:80").as_deref(),
            Some("s.example.com")
        );
        assert_eq!(
            domain_of("localhost:8080").as_deref(),
            Some("localhost:8080")
        );
        assert_eq!(
            domain_of("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            domain_of("s.example.com.").as_deref(),
            Some("s.example.com")
        );
        assert_eq!(domain_of("s.example.com/path"), None);
        assert_eq!(domain_of("user@s.example.com"), None);
        assert_eq!(domain_of(""), None);
    }

    #[test]
    fn without_domains_every_host_is_the_default_domain() {
        let site = Site::new(None, None).unwrap();
        assert_eq!(site.serves(Some("anything.example")), Served::DefaultDomain);
        assert_eq!(site.serves(None), Served::DefaultDomain);
        assert_eq!(site.short_url(None, "abc"), None);
        assert_eq!(
            site.short_url(Some("s.example.com"), "abc").as_deref(),
            Some("https://s.example.com/abc")
        );
    }

    #[test]
    fn with_domains_other_hosts_are_refused() {
        let site = Site::new(
            Some("http://go.example:8080"),
            Some("s.example.com, Shop.Example.com:443"),
        )
        .unwrap();
        assert_eq!(site.serves(Some("go.example:8080")), Served::DefaultDomain);
        assert_eq!(
            site.serves(Some("S.example.com")),
            Served::Domain("s.example.com".into())
        );
        assert_eq!(
            site.serves(Some("shop.example.com")),
            Served::Domain("shop.example.com".into())
        );
        assert_eq!(site.serves(Some("go.example")), Served::Refused);
        assert_eq!(site.serves(None), Served::Refused);
        assert_eq!(
            site.short_url(None, "abc").as_deref(),
            Some("http://go.example:8080/abc")
        );
        assert_eq!(
            site.short_url(Some("s.example.com"), "abc").as_deref(),
            Some("http://s.example.com/abc")
        );
    }

    #[test]
    fn settings_that_are_not_hosts_are_named() {
        assert!(Site::new(Some("s.example.com"), None)
            .err()
            .unwrap()
            .contains("not an http or https URL"));
        assert!(Site::new(Some("https://s.example.com/x"), None).is_err());
        assert!(Site::new(None, Some("a.example, https://b.example"))
            .err()
            .unwrap()
            .contains("\"https://b.example\""));
    }
}
