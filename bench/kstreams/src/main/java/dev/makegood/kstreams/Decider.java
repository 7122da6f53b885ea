package dev.makegood.kstreams;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import dev.makegood.kstreams.Model.Entitlement;
import dev.makegood.kstreams.Model.History;
import dev.makegood.kstreams.Model.Remedy;
import dev.makegood.kstreams.Model.Window;

/**
 * What one entitlement is owed for one incident: a port of processors/entitlements.py
 * decide_entitlement (DESIGN §3, §4.1, §4.3). It replays the incident's accepted revisions from
 * the first and returns the whole canonical remedy sequence; callers drop what they already sent.
 * Ids are the reference's UUIDv5s (processors/ids.py), so both sides name the same remedy alike.
 * One instance per thread: it keeps a SHA-1 digest.
 */
final class Decider {
    static final UUID NAMESPACE = UUID.fromString("66cbde23-9855-4b33-98e7-5acbddd6a126");

    private final Policy policy;
    private final MessageDigest sha1;
    private final byte[] namespaceBytes;

    Decider(Policy policy) {
        this.policy = policy;
        try {
            this.sha1 = MessageDigest.getInstance("SHA-1");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("no SHA-1 in this JVM", e);
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16);
        b.putLong(NAMESPACE.getMostSignificantBits()).putLong(NAMESPACE.getLeastSignificantBits());
        this.namespaceBytes = b.array();
    }

    Policy policy() {
        return policy;
    }

    /** uuid.uuid5(NAMESPACE, "|".join(parts)) as a string. */
    String uuid5(String... parts) {
        sha1.reset();
        sha1.update(namespaceBytes);
        sha1.update(String.join("|", parts).getBytes(StandardCharsets.UTF_8));
        byte[] h = sha1.digest();
        h[6] = (byte) ((h[6] & 0x0f) | 0x50);
        h[8] = (byte) ((h[8] & 0x3f) | 0x80);
        long msb = 0;
        long lsb = 0;
        for (int i = 0; i < 8; i++) {
            msb = (msb << 8) | (h[i] & 0xff);
            lsb = (lsb << 8) | (h[i + 8] & 0xff);
        }
        return new UUID(msb, lsb).toString();
    }

    String remedyId(String incidentId, String ruleId, String subjectId, int seq) {
        return uuid5(incidentId, ruleId, subjectId, Integer.toString(seq));
    }

    String noticeId(Remedy r) {
        return uuid5("remedy", r.remedyId());
    }

    /** price x hours / (period_days x 24), rounded half up, in integers only. */
    static long creditKrw(long priceKrw, long hours, int periodDays) {
        long numerator = priceKrw * hours;
        long denominator = periodDays * 24L;
        return Math.floorDiv(2 * numerator + denominator, 2 * denominator);
    }

    private static boolean usable(Entitlement e) {
        return !e.status().equals("REFUNDED") && !e.status().equals("REDEEMED");
    }

    static boolean eligible(Policy.Rule rule, Entitlement e, Window w) {
        long start = w.startedAt();
        long end = w.endedAt();
        return switch (rule.eligibility()) {
            case ACTIVE_DURING_WINDOW -> usable(e) && Math.max(e.validFrom(), start) < Math.min(e.validUntil(), end);
            case EXPIRED_DURING_WINDOW -> usable(e) && start <= e.validUntil() && e.validUntil() < end;
            case ACTIVE_AT -> usable(e) && e.validFrom() <= rule.activeAt() && rule.activeAt() < e.validUntil();
        };
    }

    /** Hours (EXTEND, GRANT) or won (CREDIT) owed under rule for the closed window w; 0 = nothing. */
    static long owed(Policy.Rule rule, Entitlement e, Window w) {
        if (!eligible(rule, e, w)) {
            return 0;
        }
        return switch (rule.remedy()) {
            case EXTEND_OUTAGE -> {
                long ms = w.endedAt() - w.startedAt();
                long rounded = -Math.floorDiv(-ms, rule.unitMs()) * rule.unitMs();
                yield rounded / Policy.HOUR_MS;
            }
            case CREDIT -> creditKrw(e.priceKrw(), rule.hours(), e.periodDays());
            default -> rule.hours();
        };
    }

    private static final class Issued {
        final String firstId;
        long total;
        int nextSeq;

        Issued(String firstId, long total) {
            this.firstId = firstId;
            this.total = total;
            this.nextSeq = 1;
        }
    }

    /** The canonical remedies e is owed for the incident in history (empty: none, pending, no rule). */
    List<Remedy> decide(History history, Entitlement e) {
        String incidentId = history.incidentId();
        if (incidentId == null) {
            return List.of();
        }
        List<Policy.Rule> rules = new ArrayList<>();
        for (Policy.Rule r : policy.rulesFor(e.service(), e.kind(), e.channel())) {
            if (r.appliesTo(incidentId)) {
                rules.add(r);
            }
        }
        if (rules.isEmpty()) {
            return List.of();
        }
        List<Remedy> walk = new ArrayList<>();
        Map<String, Issued> issued = new HashMap<>();
        for (Window rev : history.revisions()) {
            if (rev.status().equals("OPEN")) {
                continue;
            }
            long decidedAt = Math.max(e.updatedAt(), rev.publishedAt());
            if (rev.status().equals("RETRACTED")) {
                if (policy.reverseOnRetract) {
                    for (Remedy done : List.copyOf(walk)) {
                        Issued progress = issued.get(done.ruleId());
                        boolean money = done.amountKrw() != null;
                        long value = money ? done.amountKrw() : done.extendHours();
                        walk.add(remedy(incidentId, done.ruleId(), e, "REVERSAL", progress.nextSeq, value,
                                        done.remedyId(), decidedAt, money));
                        progress.nextSeq++;
                    }
                }
                break;
            }
            if (!rev.services().contains(e.service())) {
                continue;
            }
            for (Policy.Rule rule : rules) {
                long amount = owed(rule, e, rev);
                if (amount <= 0) {
                    continue;
                }
                Issued progress = issued.get(rule.id());
                if (progress == null) {
                    Remedy first = remedy(incidentId, rule.id(), e, rule.action(), 0, amount, null, decidedAt,
                                          rule.money());
                    walk.add(first);
                    issued.put(rule.id(), new Issued(first.remedyId(), amount));
                } else if (rule.durationBased() && amount > progress.total) {
                    walk.add(remedy(incidentId, rule.id(), e, rule.action(), progress.nextSeq,
                                    amount - progress.total, progress.firstId, decidedAt, rule.money()));
                    progress.total = amount;
                    progress.nextSeq++;
                }
            }
        }
        return walk;
    }

    private Remedy remedy(String incidentId, String ruleId, Entitlement e, String action, int seq, long value,
                          String supersedes, long decidedAt, boolean money) {
        return new Remedy(remedyId(incidentId, ruleId, e.entitlementId(), seq), incidentId, ruleId,
                          policy.version, action, e.userId(), e.entitlementId(), e.service(),
                          money ? null : Math.toIntExact(value), money ? value : null, supersedes, decidedAt);
    }

    /** The fixed sentence of processors/notices.py describe() for an entitlement remedy. */
    static String describe(Remedy r) {
        String svc = r.service();
        return switch (r.action()) {
            case "EXTEND" -> "Your " + svc + " entitlement has been extended by " + r.extendHours()
                + " hours to make up for the service outage.";
            case "GRANT" -> "You have been granted a " + svc + " item usable for " + r.extendHours()
                + " hours to make up for the service outage.";
            case "CREDIT" -> "A refund credit of " + r.amountKrw() + " won for " + svc
                + " has been issued to make up for the service outage.";
            default -> r.amountKrw() != null
                ? "A " + svc + " compensation of " + r.amountKrw() + " won has been withdrawn because the incident was retracted."
                : "A " + svc + " extension of " + r.extendHours() + " hours has been withdrawn because the incident was retracted.";
        };
    }
}
