package dev.makegood.interop;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;

/**
 * makegood's records as Apache Avro's Java library reads and writes them in single-object
 * encoding (BinaryMessageDecoder / BinaryMessageEncoder, the reference implementation).
 *
 * <p>One request a line on stdin, fields separated by a tab; one answer a line on stdout, in
 * the same order:
 * <pre>
 *   fingerprint SCHEMA.avsc        ok  CRC-64-AVRO of the schema's canonical form, as 16 hex digits
 *   decode SCHEMA.avsc HEX         ok  the record in Avro's JSON encoding (one line)
 *   encode SCHEMA.avsc AVRO-JSON   ok  the record in single-object encoding, as hex
 * </pre>
 * A request that fails answers {@code error<TAB>ExceptionClass: message} and the next request
 * is read, so one JVM answers for every schema and record. Values stay as Avro stores them
 * (no logical-type conversions): a timestamp-millis is its long.
 */
public final class AvroInterop {
  private final Map<String, Schema> schemas = new HashMap<>();

  private Schema schema(String path) throws IOException {
    Schema s = schemas.get(path);
    if (s == null) {
      s = new Schema.Parser().parse(new File(path));   // one parser per file: files repeat names
      schemas.put(path, s);
    }
    return s;
  }

  String answer(String[] request) throws Exception {
    if (request.length < 2) {
      throw new IllegalArgumentException("expected KIND<TAB>SCHEMA[<TAB>DATA]");
    }
    Schema schema = schema(request[1]);
    switch (request[0]) {
      case "fingerprint":
        return String.format("%016x", SchemaNormalization.parsingFingerprint64(schema));
      case "decode": {
        BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), schema);
        GenericRecord record = decoder.decode(unhex(request[2]));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        JsonEncoder json = EncoderFactory.get().jsonEncoder(schema, out);
        new GenericDatumWriter<GenericRecord>(schema).write(record, json);
        json.flush();
        return out.toString(StandardCharsets.UTF_8).trim();
      }
      case "encode": {
        GenericRecord record = new GenericDatumReader<GenericRecord>(schema)
            .read(null, DecoderFactory.get().jsonDecoder(schema, request[2]));
        return hex(new BinaryMessageEncoder<GenericRecord>(GenericData.get(), schema).encode(record));
      }
      default:
        throw new IllegalArgumentException("unknown request " + request[0]);
    }
  }

  static byte[] unhex(String hex) {
    byte[] out = new byte[hex.length() / 2];
    for (int i = 0; i < out.length; i++) {
      out[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  static String hex(ByteBuffer buffer) {
    StringBuilder out = new StringBuilder();
    for (int i = buffer.position(); i < buffer.limit(); i++) {
      out.append(String.format("%02x", buffer.get(i)));
    }
    return out.toString();
  }

  public static void main(String[] args) throws IOException {
    AvroInterop tool = new AvroInterop();
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      if (line.isEmpty()) {
        continue;
      }
      String reply;
      try {
        reply = "ok\t" + tool.answer(line.split("\t", 3));
      } catch (Exception e) {
        reply = "error\t" + e.getClass().getSimpleName() + ": " + String.valueOf(e.getMessage()).replaceAll("\\s+", " ");
      }
      out.println(reply);
    }
    out.flush();
  }
}
