// Drives the PostgreSQL JDBC driver (pgjdbc: what DBeaver, Metabase and Tableau use) against
// `meshwork serve`, the way those tools call it, and prints what it got for check_clients.py.
//
// Usage: java -cp postgresql.jar ClientCheck.java PORT PASSWORD OPERATION...
// where an OPERATION is one argument, its parts separated by `|`:
//   schemas | tables|SCHEMA | columns|SCHEMA|TABLE | pk|SCHEMA|TABLE | imported|SCHEMA|TABLE
//   index|SCHEMA|TABLE | query|SQL | prepared|SQL|INT | fetch|SQL|FETCH_SIZE
// Each operation prints `== OPERATION`, then one line per row (values tab-separated, NULL as
// `\N`), or one line `!! ExceptionClass: message` when the driver threw.

import java.sql.*;
import java.util.*;

public class ClientCheck {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/meshwork?sslmode=disable&connectTimeout=10";
        Properties props = new Properties();
        props.setProperty("user", "jdbc");
        props.setProperty("password", args[1]);
        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData meta = conn.getMetaData();
            for (int i = 2; i < args.length; i++) {
                String[] op = args[i].split("\\|", -1);
                System.out.println("== " + args[i]);
                try {
                    switch (op[0]) {
                        case "schemas" -> print(meta.getSchemas(), "TABLE_SCHEM");
                        case "tables" -> print(meta.getTables(null, op[1], "%", null), "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
                        case "columns" -> print(meta.getColumns(null, op[1], op[2], "%"), "COLUMN_NAME", "TYPE_NAME", "NULLABLE");
                        case "pk" -> print(meta.getPrimaryKeys(null, op[1], op[2]), "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
                        case "imported" -> print(meta.getImportedKeys(null, op[1], op[2]), "PKTABLE_NAME", "PKCOLUMN_NAME", "FKCOLUMN_NAME");
                        case "index" -> print(meta.getIndexInfo(null, op[1], op[2], false, true), "INDEX_NAME", "COLUMN_NAME", "NON_UNIQUE");
                        case "query" -> {
                            try (Statement st = conn.createStatement()) {
                                print(st.executeQuery(op[1]));
                            }
                        }
                        case "prepared" -> {
                            // Five runs: pgjdbc switches to a named server-side statement from the fifth.
                            for (int run = 0; run < 5; run++) {
                                try (PreparedStatement ps = conn.prepareStatement(op[1])) {
                                    ps.setInt(1, Integer.parseInt(op[2]));
                                    ResultSet rs = ps.executeQuery();
                                    if (run < 4) {
                                        while (rs.next()) { }
                                    } else {
                                        print(rs);
                                    }
                                }
                            }
                        }
                        case "fetch" -> {
                            // setFetchSize only pages inside a transaction (a portal read in steps).
                            conn.setAutoCommit(false);
                            try (Statement st = conn.createStatement()) {
                                st.setFetchSize(Integer.parseInt(op[2]));
                                print(st.executeQuery(op[1]));
                            } finally {
                                conn.commit();
                                conn.setAutoCommit(true);
                            }
                        }
                        default -> throw new IllegalArgumentException("unknown operation `" + op[0] + "`");
                    }
                } catch (SQLException e) {
                    System.out.println("!! " + e.getClass().getSimpleName() + ": " + e.getMessage().replace('\n', ' '));
                    if (!conn.getAutoCommit()) {
                        conn.rollback();
                        conn.setAutoCommit(true);
                    }
                }
            }
        }
    }

    static void print(ResultSet rs, String... columns) throws SQLException {
        int n = columns.length == 0 ? rs.getMetaData().getColumnCount() : columns.length;
        while (rs.next()) {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < n; i++) {
                String value = columns.length == 0 ? rs.getString(i + 1) : rs.getString(columns[i]);
                if (i > 0) line.append('\t');
                line.append(value == null ? "\\N" : value);
            }
            System.out.println(line);
        }
        rs.close();
    }
}
