package dev.makegood.kstreams;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DatumReader;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;

import dev.makegood.kstreams.Model.Entitlement;
import dev.makegood.kstreams.Model.Remedy;
import dev.makegood.kstreams.Model.Source;
import dev.makegood.kstreams.Model.Window;

/**
 * Avro in the Confluent framing the workers write with a schema registry (streams/wire/framing.py):
 * byte 0, the 4-byte big-endian schema id, the Avro body. The writer schema of an id is fetched
 * once from the registry's Confluent-compatible API and resolved to the reader schema in
 * schemas/*.avsc; outputs are written under an id registered for the output topic's subject
 * (TopicNameStrategy, {@code <topic>-value}). Single-object encoding (C3 01) is not read: the bench
 * writes registry framing, and anything else is counted as a bad record.
 */
final class Codec {
    /** A record this peer cannot read or that the reference would dead-letter. */
    static final class BadRecord extends Exception {
        BadRecord(String reason) {
            super(reason, null, false, false);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String url;
    private final Path schemasDir;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final Map<String, Schema> readers = new ConcurrentHashMap<>();
    private final Map<String, DatumReader<GenericRecord>> byId = new ConcurrentHashMap<>();
    private final DecoderFactory decoders = DecoderFactory.get();

    Codec(String registryUrl, Path schemasDir) {
        this.url = registryUrl.replaceAll("/+$", "");
        this.schemasDir = schemasDir;
    }

    Schema schema(String name) {
        return readers.computeIfAbsent(name, n -> {
            try {
                return new Schema.Parser().parse(schemasDir.resolve(n + ".avsc").toFile());
            } catch (IOException e) {
                throw new IllegalStateException("cannot read schemas/" + n + ".avsc", e);
            }
        });
    }

    GenericRecord decode(String name, byte[] data, BinaryDecoder[] reuse) throws BadRecord {
        if (data == null || data.length < 5 || data[0] != 0) {
            throw new BadRecord("not in the registry framing");
        }
        int id = ByteBuffer.wrap(data, 1, 4).getInt();
        DatumReader<GenericRecord> reader = byId.get(name + "#" + id);
        if (reader == null) {
            Schema writer = new Schema.Parser().parse(get("/schemas/ids/" + id));
            reader = new GenericDatumReader<>(writer, schema(name));
            byId.put(name + "#" + id, reader);
        }
        try {
            reuse[0] = decoders.binaryDecoder(data, 5, data.length - 5, reuse[0]);
            return reader.read(null, reuse[0]);
        } catch (IOException | RuntimeException e) {
            throw new BadRecord("undecodable " + name);
        }
    }

    Entitlement entitlement(byte[] data, BinaryDecoder[] reuse) throws BadRecord {
        GenericRecord r = decode("entitlement_state", data, reuse);
        return new Entitlement(r.get("entitlement_id").toString(), r.get("user_id").toString(),
                               r.get("service").toString(), r.get("kind").toString(),
                               r.get("billing_channel").toString(), r.get("status").toString(),
                               (Long) r.get("valid_from"), (Long) r.get("valid_until"), (Long) r.get("price_krw"),
                               (Integer) r.get("period_days"), (Long) r.get("updated_at"));
    }

    Window window(byte[] data) throws BadRecord {
        GenericRecord r = decode("outage_window", data, new BinaryDecoder[1]);
        List<String> services = new ArrayList<>();
        for (Object s : (List<?>) r.get("services")) {
            services.add(s.toString());
        }
        return new Window(r.get("incident_id").toString(), (Integer) r.get("revision"), r.get("status").toString(),
                          List.copyOf(services), (Long) r.get("started_at"), (Long) r.get("ended_at"),
                          (Long) r.get("published_at"));
    }

    /** Register the current schema `name` under `subject` (idempotent); its id. */
    int register(String subject, String name) {
        String body = JSON.createObjectNode().put("schema", schema(name).toString()).toString();
        HttpRequest req = HttpRequest.newBuilder(URI.create(url + "/subjects/" + subject + "/versions"))
            .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        JsonNode id = send(req).get("id");
        if (id == null || !id.canConvertToInt()) {
            throw new IllegalStateException("registry did not return an id for " + subject);
        }
        return id.intValue();
    }

    /** An encoder of one output record type, framed with its schema id. Not thread-safe. */
    final class Writer {
        private final int id;
        private final Schema schema;
        private final GenericDatumWriter<GenericRecord> writer;
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream(512);
        private BinaryEncoder enc;

        Writer(int id, String name) {
            this.id = id;
            this.schema = Codec.this.schema(name);
            this.writer = new GenericDatumWriter<>(schema);
        }

        Schema schema() {
            return schema;
        }

        byte[] write(GenericRecord r) {
            buf.reset();
            buf.write(0);
            buf.writeBytes(ByteBuffer.allocate(4).putInt(id).array());
            enc = EncoderFactory.get().binaryEncoder(buf, enc);
            try {
                writer.write(r, enc);
                enc.flush();
            } catch (IOException e) {
                throw new IllegalStateException("cannot encode " + schema.getName(), e);
            }
            return buf.toByteArray();
        }
    }

    static GenericRecord remedyRecord(Schema s, Remedy r, Source src) {
        GenericData.Record out = new GenericData.Record(s);
        out.put("remedy_id", r.remedyId());
        out.put("incident_id", r.incidentId());
        out.put("rule_id", r.ruleId());
        out.put("policy_version", r.policyVersion());
        out.put("action", new GenericData.EnumSymbol(s.getField("action").schema(), r.action()));
        out.put("user_id", r.userId());
        out.put("subject_kind", new GenericData.EnumSymbol(s.getField("subject_kind").schema(), "ENTITLEMENT"));
        out.put("subject_id", r.subjectId());
        out.put("service", r.service());
        out.put("extend_hours", r.extendHours());
        out.put("amount_krw", r.amountKrw());
        out.put("supersedes", r.supersedes());
        out.put("decided_at", r.decidedAt());
        out.put("source", sourceRecord(s.getField("source").schema(), src));
        return out;
    }

    static GenericRecord noticeRecord(Schema s, String noticeId, Remedy r, Source src) {
        GenericData.Record out = new GenericData.Record(s);
        out.put("notice_id", noticeId);
        out.put("user_id", r.userId());
        out.put("incident_id", r.incidentId());
        String kind = r.action().equals("REVERSAL") ? "REMEDY_REVERSED" : "REMEDY_ISSUED";
        out.put("kind", new GenericData.EnumSymbol(s.getField("kind").schema(), kind));
        out.put("remedy_ids", List.of(r.remedyId()));
        out.put("report_id", null);
        out.put("message", Decider.describe(r));
        out.put("policy_version", r.policyVersion());
        out.put("decided_at", r.decidedAt());
        out.put("source", sourceRecord(s.getField("source").schema(), src));
        return out;
    }

    private static GenericRecord sourceRecord(Schema s, Source src) {
        GenericData.Record out = new GenericData.Record(s);
        out.put("topic", src.topic());
        out.put("partition", src.partition());
        out.put("offset", src.offset());
        return out;
    }

    private String get(String path) {
        JsonNode schema = send(HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(30))
                                   .GET().build()).get("schema");
        if (schema == null || !schema.isTextual()) {
            throw new IllegalStateException("registry answer for " + path + " has no schema");
        }
        return schema.asText();
    }

    private JsonNode send(HttpRequest req) {
        try {
            HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
            if (resp.statusCode() / 100 != 2) {
                throw new IllegalStateException("registry answered " + resp.statusCode() + " for " + req.uri().getPath());
            }
            return JSON.readTree(resp.body());
        } catch (IOException e) {
            throw new IllegalStateException("registry unavailable: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }
}
