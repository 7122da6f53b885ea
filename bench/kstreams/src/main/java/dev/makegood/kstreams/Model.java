package dev.makegood.kstreams;

import java.util.ArrayList;
import java.util.List;

/** The records of the join, as plain values (field names as in schemas/*.avsc). */
final class Model {
    private Model() {
    }

    record Entitlement(String entitlementId, String userId, String service, String kind, String channel,
                       String status, long validFrom, long validUntil, long priceKrw, int periodDays,
                       long updatedAt) {
    }

    /** One revision of an incident's window; endedAt is null while OPEN. */
    record Window(String incidentId, int revision, String status, List<String> services, long startedAt,
                  Long endedAt, long publishedAt) {
    }

    /** Where the deciding input record came from (lineage, as in remedy_action.source). */
    record Source(String topic, int partition, long offset) {
    }

    /** A remedy for one entitlement: extendHours for EXTEND/GRANT, amountKrw for CREDIT. */
    record Remedy(String remedyId, String incidentId, String ruleId, String policyVersion, String action,
                  String userId, String subjectId, String service, Integer extendHours, Long amountKrw,
                  String supersedes, long decidedAt) {
    }

    /** The accepted revisions of one incident, oldest first (processors/windows.py IncidentHistory). */
    record History(List<Window> revisions) {
        static final History EMPTY = new History(List.of());

        String incidentId() {
            return revisions.isEmpty() ? null : revisions.get(0).incidentId();
        }

        Window latest() {
            return revisions.isEmpty() ? null : revisions.get(revisions.size() - 1);
        }

        /** A new history with w appended, or null when w is not newer than the latest revision. */
        History accept(Window w) {
            Window latest = latest();
            if (latest != null) {
                if (!w.incidentId().equals(latest.incidentId())) {
                    throw new IllegalArgumentException("revision of another incident");
                }
                if (w.revision() <= latest.revision()) {
                    return null;
                }
            }
            List<Window> out = new ArrayList<>(revisions);
            out.add(w);
            return new History(List.copyOf(out));
        }
    }
}
