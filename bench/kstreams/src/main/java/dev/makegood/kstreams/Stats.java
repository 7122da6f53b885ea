package dev.makegood.kstreams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/** What the bench reads back: records processed (with the clock of the first and the N-th), sweeps. */
final class Stats {
    final long target;
    final AtomicLong processed = new AtomicLong();
    final AtomicLong invalid = new AtomicLong();
    final AtomicLong remedies = new AtomicLong();
    final AtomicLong sweptEntitlements = new AtomicLong();
    final AtomicInteger sweepsRunning = new AtomicInteger();
    final AtomicInteger sweepsDone = new AtomicInteger();
    volatile long firstNanos;
    volatile long targetNanos;

    Stats(long target) {
        this.target = target;
    }

    void processed() {
        long n = processed.incrementAndGet();
        if (n == 1) {
            firstNanos = System.nanoTime();
        }
        if (n == target) {
            targetNanos = System.nanoTime();
        }
    }

    void sweepStarted() {
        sweepsRunning.incrementAndGet();
    }

    void swept(int n) {
        sweptEntitlements.addAndGet(n);
    }

    void sweepDone() {
        sweepsRunning.decrementAndGet();
        sweepsDone.incrementAndGet();
    }

    /** Seconds from the first record processed to the target-th; -1 before that. */
    double seconds() {
        return targetNanos == 0 ? -1 : (targetNanos - firstNanos) / 1e9;
    }

    /** VmHWM of this process in kB (Linux), or -1. */
    static long peakRssKb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    String json(String event) {
        double elapsed = firstNanos == 0 ? 0 : (System.nanoTime() - firstNanos) / 1e9;
        return String.format(Locale.ROOT, "{\"event\": \"%s\", \"events\": %d, \"target\": %d, \"seconds\": %s, "
                             + "\"elapsed_s\": %.3f, \"invalid\": %d, "
                             + "\"remedies_sent\": %d, \"swept\": %d, \"sweeps_done\": %d, \"sweeps_running\": %d, "
                             + "\"peak_rss_kb\": %d, \"heap_max_mb\": %d}",
                             event, processed.get(), target, seconds() < 0 ? "null" : String.format(Locale.ROOT, "%.3f", seconds()),
                             elapsed, invalid.get(), remedies.get(), sweptEntitlements.get(), sweepsDone.get(),
                             sweepsRunning.get(), peakRssKb(), Runtime.getRuntime().maxMemory() >> 20);
    }
}
