package dev.makegood.kstreams;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Date;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * The entitlement rules of a makegood policy file (deploy/policies/*.yaml, docs/policy.md), read
 * from the same YAML the workers read. Only what the entitlement x window join needs: version,
 * services, on_retract and the rules; report tiers and intake are not this peer's job.
 * The Python reference (processors/policy.py) validates far more; this reads a file it accepted.
 */
final class Policy {
    static final long HOUR_MS = 3_600_000L;

    enum Eligibility { ACTIVE_DURING_WINDOW, ACTIVE_AT, EXPIRED_DURING_WINDOW }

    enum RemedyKind { EXTEND, EXTEND_OUTAGE, CREDIT, GRANT }

    /** One rule; null sets mean "any". hours: EXTEND, CREDIT, GRANT; unitMs: EXTEND_OUTAGE. */
    record Rule(String id, Set<String> services, Set<String> kinds, Set<String> channels,
                Set<String> incidents, Eligibility eligibility, long activeAt,
                RemedyKind remedy, int hours, long unitMs) {

        String action() {
            return switch (remedy) {
                case CREDIT -> "CREDIT";
                case GRANT -> "GRANT";
                default -> "EXTEND";
            };
        }

        boolean money() {
            return remedy == RemedyKind.CREDIT;
        }

        /** What it owes grows with the window, so a longer revision tops it up. */
        boolean durationBased() {
            return remedy == RemedyKind.EXTEND_OUTAGE;
        }

        boolean appliesTo(String incidentId) {
            return incidents == null || incidents.contains(incidentId);
        }

        boolean matches(String service, String kind, String channel) {
            return (services == null || services.contains(service))
                && (kinds == null || kinds.contains(kind))
                && (channels == null || channels.contains(channel));
        }
    }

    private static final Pattern DURATION = Pattern.compile("^([1-9][0-9]*)([hd])$");

    final String version;
    final Set<String> services;
    final boolean reverseOnRetract;
    final List<Rule> rules;
    private final Map<String, List<Rule>> byKey = new HashMap<>();

    private Policy(String version, Set<String> services, boolean reverseOnRetract, List<Rule> rules) {
        this.version = version;
        this.services = services;
        this.reverseOnRetract = reverseOnRetract;
        this.rules = rules;
    }

    /** Rules matching (service, kind, channel), in file order; empty when none. */
    List<Rule> rulesFor(String service, String kind, String channel) {
        return byKey.computeIfAbsent(service + '\u0000' + kind + '\u0000' + channel, k -> {
            List<Rule> out = new ArrayList<>();
            for (Rule r : rules) {
                if (services.contains(service) && r.matches(service, kind, channel)) {
                    out.add(r);
                }
            }
            return List.copyOf(out);
        });
    }

    static Policy load(Path path) throws IOException {
        Map<String, Object> top;
        try (Reader in = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
            top = new Yaml(new SafeConstructor(new LoaderOptions())).load(in);
        }
        String where = path.getFileName().toString();
        List<Rule> rules = new ArrayList<>();
        for (Object raw : list(top.get("rules"), where + ": rules")) {
            rules.add(rule(map(raw, where + ": rule"), where));
        }
        return new Policy(text(top.get("version"), where + ": version"),
                          names(top.get("services")),
                          "reverse".equals(String.valueOf(top.getOrDefault("on_retract", "keep"))),
                          List.copyOf(rules));
    }

    private static Rule rule(Map<String, Object> body, String where) {
        String id = text(body.get("id"), where + ": rule id");
        String at = where + ": rule " + id;
        Eligibility eligibility;
        long activeAt = 0;
        Object eligible = body.get("eligible");
        if (eligible instanceof String s) {
            eligibility = Eligibility.valueOf(s.toUpperCase());
        } else {
            eligibility = Eligibility.ACTIVE_AT;
            activeAt = instant(map(eligible, at + ".eligible").get("active_at"), at + ".eligible.active_at");
        }
        Map<String, Object> remedy = map(body.get("remedy"), at + ".remedy");
        if (remedy.size() != 1) {
            throw new IllegalArgumentException(at + ".remedy: expected exactly one remedy");
        }
        Map.Entry<String, Object> only = remedy.entrySet().iterator().next();
        RemedyKind kind = RemedyKind.valueOf(only.getKey().toUpperCase());
        int hours = 0;
        long unitMs = 0;
        switch (kind) {
            case EXTEND_OUTAGE -> unitMs = hours(map(only.getValue(), at).get("round_up_to"), at) * HOUR_MS;
            case GRANT -> hours = hours(map(only.getValue(), at).get("hours"), at);
            default -> hours = hours(only.getValue(), at);
        }
        return new Rule(id, names(body.get("services")), names(body.get("kinds")), names(body.get("channels")),
                        names(body.get("incidents")), eligibility, activeAt, kind, hours, unitMs);
    }

    private static int hours(Object value, String at) {
        Matcher m = DURATION.matcher(String.valueOf(value));
        if (!m.matches()) {
            throw new IllegalArgumentException(at + ": bad duration " + value);
        }
        int n = Integer.parseInt(m.group(1));
        return m.group(2).equals("d") ? n * 24 : n;
    }

    private static long instant(Object value, String at) {
        if (value instanceof Date d) {
            return d.getTime();
        }
        if (value instanceof String s) {
            return OffsetDateTime.parse(s).toInstant().toEpochMilli();
        }
        throw new IllegalArgumentException(at + ": expected an ISO-8601 instant with an offset");
    }

    private static Set<String> names(Object value) {
        if (value == null) {
            return null;
        }
        Set<String> out = new HashSet<>();
        for (Object o : list(value, "names")) {
            out.add(String.valueOf(o));
        }
        return Set.copyOf(out);
    }

    private static String text(Object value, String at) {
        if (!(value instanceof String s) || s.isBlank()) {
            throw new IllegalArgumentException(at + ": expected a non-empty string");
        }
        return s;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object value, String at) {
        if (!(value instanceof Map)) {
            throw new IllegalArgumentException(at + ": expected a mapping");
        }
        return (Map<String, Object>) value;
    }

    private static Collection<?> list(Object value, String at) {
        if (!(value instanceof Collection<?> c)) {
            throw new IllegalArgumentException(at + ": expected a list");
        }
        return c;
    }
}
